"""The hub's lean Redis connections (agent_hub/resp.py) against a real redis-server of the
test's own: messages arrive whole and in order, keys are read from the URL's database, a
password is sent, and every way of losing the server is a redis-py error the hub already
handles (then the next call reconnects by itself)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamspace.agent_hub import resp
from streamspace.agent_hub.base import AGENT_KEY_TTL
from streamspace.agent_hub.discovery import RedisTarget
from streamspace.agent_hub.redis import RedisHubBackend
from streamspace.agent_hub.resp import Address, RespClient, RespSubscriber
from tests.support.cluster import eventually, holds
from tests.support.processes import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    redis_server = RedisServer(log_dir=tmp_path).start()
    try:
        yield redis_server
    finally:
        redis_server.send_signal(signal.SIGCONT)
        redis_server.stop()


def url(server: RedisServer, db: int = 1, auth: str = "") -> str:
    return f"redis://{auth}127.0.0.1:{server.port}/{db}"


@pytest.fixture
async def hub(server: RedisServer) -> AsyncIterator[RedisHubBackend]:
    """The hub's Redis backend, started (subscribed), with REDIS_POOL_SIZE 2."""

    async def ignore(_channel: str, _data: bytes) -> None:
        return None

    async def nothing() -> None:
        return None

    backend = RedisHubBackend(target=RedisTarget(url=url(server)), pool_size=2)
    await backend.start(channels=["test"], handler=ignore, on_connected=nothing)
    try:
        yield backend
    finally:
        await backend.close()


async def test_messages_arrive_whole_and_in_order_with_receiver_counts(
    server: RedisServer,
) -> None:
    address = Address.from_url(url(server))
    subscriber = RespSubscriber(address, ["pod:a", "pod:b"])
    client = RespClient(address)
    await subscriber.connect()
    try:
        payloads = [bytes([i % 256]) * (i * 37) for i in range(200)]  # 0 B .. 7 KB, any byte
        counts = await client.pipeline([("PUBLISH", "pod:a", p) for p in payloads])
        assert counts == [1] * 200
        assert await client.call("PUBLISH", "pod:nobody", b"x") == 0
        assert await client.call("PUBLISH", "pod:b", b"last") == 1
        got = [await subscriber.get(wait=2) for _ in range(201)]
        assert got == [(b"pod:a", p) for p in payloads] + [(b"pod:b", b"last")]
        assert await subscriber.get(wait=0.2) is None  # nothing else came
    finally:
        await subscriber.close()
        await client.close()


async def test_keys_are_read_from_the_urls_database_and_errors_are_redis_errors(
    server: RedisServer,
) -> None:
    writer = aioredis.Redis.from_url(url(server, db=1))
    await writer.set("agent:a1:pod", "api-b")
    client, other_db = (
        RespClient(Address.from_url(url(server, db=1))),
        RespClient(Address.from_url(url(server, db=0))),
    )
    try:
        assert await client.call("MGET", "agent:a1:pod", "agent:a2:pod") == [b"api-b", None]
        assert await other_db.call("MGET", "agent:a1:pod") == [None]
        with pytest.raises(ResponseError):
            await client.call("NOSUCHCOMMAND")
        assert await client.call("GET", "agent:a1:pod") == b"api-b"  # still in step
    finally:
        await writer.aclose()
        await client.close()
        await other_db.close()


async def test_a_password_is_sent_and_a_wrong_one_is_a_clear_refusal(tmp_path: Path) -> None:
    server = RedisServer(log_dir=tmp_path, password="s3cret@pw").start()
    try:
        good = Address.from_url(url(server, auth=":s3cret%40pw@"))
        assert good.password == "s3cret@pw"
        client = RespClient(good)
        assert await client.call("PUBLISH", "x", b"y") == 0
        await client.close()
        subscriber = RespSubscriber(good, ["x"])
        await subscriber.connect()
        await subscriber.close()
        with pytest.raises(RedisConnectionError, match="refused the password"):
            await RespClient(Address.from_url(url(server, auth=":wrong@"))).call("PING")
        with pytest.raises(RedisConnectionError, match="refused the subscription: NOAUTH"):
            await RespSubscriber(Address.from_url(url(server)), ["x"]).connect()
    finally:
        server.stop()


async def test_a_killed_server_fails_calls_and_the_subscriber_then_both_come_back(
    server: RedisServer, tmp_path: Path
) -> None:
    address = Address.from_url(url(server))
    client, subscriber = RespClient(address), RespSubscriber(address, ["pod:a"])
    await subscriber.connect()
    assert await client.call("PUBLISH", "pod:a", b"1") == 1
    # PUBLISH answers once the message is queued for the subscriber, which Redis may write a
    # moment after the answer: kill the server only once the subscriber's socket has it.
    await eventually(holds(lambda: bool(subscriber._messages)), what="the message received")
    server.kill()
    assert await subscriber.get(wait=1) == (b"pod:a", b"1")  # what came before the loss
    with pytest.raises(RedisConnectionError):
        await subscriber.get(wait=1)
    with pytest.raises(RedisConnectionError):
        await client.call("PUBLISH", "pod:a", b"2")
    revived = RedisServer(log_dir=tmp_path, port=server.port).start()
    try:
        subscriber = RespSubscriber(address, ["pod:a"])
        await subscriber.connect()
        assert await client.call("PUBLISH", "pod:a", b"3") == 1  # reconnected by itself
        assert await subscriber.get(wait=2) == (b"pod:a", b"3")
    finally:
        await subscriber.close()
        await client.close()
        revived.stop()


async def test_a_server_that_stops_answering_is_noticed_without_a_reset(
    server: RedisServer,
) -> None:
    """A paused (or unplugged) server sends no RST: calls time out, and an idle subscriber's
    health PING goes unanswered, so both report the connection lost instead of waiting."""
    address = Address.from_url(url(server))
    client = RespClient(address, timeout=0.5)
    subscriber = RespSubscriber(address, ["pod:a"], timeout=0.5, health_interval=0.3)
    await subscriber.connect()
    try:
        assert await subscriber.get(wait=0.4) is None  # idle and healthy: PINGs answered
        assert await subscriber.get(wait=0.4) is None
        server.send_signal(signal.SIGSTOP)
        with pytest.raises(RedisTimeoutError):
            await client.call("PUBLISH", "pod:a", b"lost")
        async with asyncio.timeout(5):
            with pytest.raises(RedisConnectionError, match="did not answer a PING"):
                while True:
                    await subscriber.get(wait=0.2)
        server.send_signal(signal.SIGCONT)
        assert await client.call("PUBLISH", "pod:a", b"back") == 0  # new connection
    finally:
        await subscriber.close()
        await client.close()


async def test_a_consumer_that_falls_behind_pauses_reading_and_loses_nothing(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resp, "PAUSE_AT", 50)
    monkeypatch.setattr(resp, "RESUME_AT", 10)
    address = Address.from_url(url(server))
    subscriber, client = RespSubscriber(address, ["pod:a"]), RespClient(address)
    await subscriber.connect()
    try:
        await client.pipeline([("PUBLISH", "pod:a", str(i)) for i in range(500)])
        transport = subscriber._proto.transport if subscriber._proto else None
        assert transport is not None
        async with asyncio.timeout(10):  # PAUSE_AT messages arrive; then Redis holds the rest
            while transport.is_reading():  # noqa: ASYNC110 - asyncio has no event for it
                await asyncio.sleep(0.01)
        got = [await subscriber.get(wait=2) for _ in range(500)]
        assert got == [(b"pod:a", str(i).encode()) for i in range(500)]
        assert transport.is_reading()
    finally:
        await subscriber.close()
        await client.close()


async def test_heartbeat_refresh_writes_each_agents_keys_with_their_ttl(
    server: RedisServer, hub: RedisHubBackend
) -> None:
    """The hub's batched refresh (one write for every agent of a flush) leaves each agent's
    pod and connected keys set, in the hub's database, with the agent key TTL, and lookups
    find the pod."""
    agents = [f"hb-{i}" for i in range(300)]
    await hub.refresh_many(agent_ids=agents, pod_name="pod-x")
    async with aioredis.Redis(port=server.port, db=1) as check:
        for agent_id in (agents[0], agents[-1]):
            assert await check.get(f"agent:{agent_id}:pod") == b"pod-x"
            assert await check.get(f"agent:{agent_id}:connected") == b"1"
            assert 0 < await check.ttl(f"agent:{agent_id}:pod") <= AGENT_KEY_TTL
            assert 0 < await check.ttl(f"agent:{agent_id}:connected") <= AGENT_KEY_TTL
        assert await check.dbsize() == 2 * len(agents)
    assert await hub.lookup(agent_id="hb-7") == "pod-x"


async def test_the_hub_opens_no_more_pooled_connections_than_redis_pool_size(
    server: RedisServer, hub: RedisHubBackend
) -> None:
    """REDIS_POOL_SIZE is what the hub's pool opens at most under a burst; beside it the hub
    holds its subscription and its pipelined connection, two more."""
    await hub.lookup(agent_id="warm-up")  # the pipelined connection is open
    await asyncio.gather(*(hub.claim(agent_id=f"burst-{i}", pod_name="pod-x") for i in range(40)))
    async with aioredis.Redis(port=server.port, db=0) as check:
        me = await check.client_id()
        clients = [c for c in await check.client_list() if int(c["id"]) != me]
    assert len(clients) == 2 + 2, clients
