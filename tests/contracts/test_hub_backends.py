"""The AgentHub backends' contract suite: the in-memory backend and the Redis one (against a
redis-server of the test's own) pass the same tests, role by role: AgentRegistry, Bus and
ReplicaAddresses, as one replica sees them."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamspace.agent_hub.base import HubBackend
from streamspace.agent_hub.discovery import RedisTarget
from streamspace.agent_hub.memory import MemoryHubBackend
from streamspace.agent_hub.redis import RedisHubBackend
from tests.support.cluster import eventually, holds
from tests.support.processes import RedisServer

CHANNEL = "pod:pod-a:commands"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.connected = 0

    async def handler(self, channel: str, data: bytes) -> None:
        self.messages.append((channel, data))

    async def on_connected(self) -> None:
        self.connected += 1


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        # STREAMSPACE_LEAN_REDIS_CLIENT=false: the library path keeps the same contract
        pytest.param("redis-py", marks=pytest.mark.redis),
    ]
)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[HubBackend, Inbox]]:
    server = None
    if request.param == "memory":
        store: HubBackend = MemoryHubBackend()
    else:
        server = RedisServer(log_dir=tmp_path).start()
        store = RedisHubBackend(
            target=RedisTarget(url=f"redis://127.0.0.1:{server.port}/1"),
            pool_size=2,
            lean=request.param == "redis",
        )
    inbox = Inbox()
    try:
        await store.start(
            channels=[CHANNEL], handler=inbox.handler, on_connected=inbox.on_connected
        )
        await eventually(
            holds(lambda: store.multi_pod == store.shared), what=f"{store.name} started"
        )
        yield store, inbox
    finally:
        await store.close()
        if server is not None:
            server.send_signal(signal.SIGCONT)
            server.stop()


# -- AgentRegistry -------------------------------------------------------------------------------


async def test_a_claimed_agent_is_found_on_its_pod(backend: tuple[HubBackend, Inbox]) -> None:
    store, _ = backend
    assert await store.lookup(agent_id="agent-1") is None
    await store.claim(agent_id="agent-1", pod_name="pod-a")
    assert await store.lookup(agent_id="agent-1") == "pod-a"
    await store.claim(agent_id="agent-1", pod_name="pod-b")  # the agent moved
    assert await store.lookup(agent_id="agent-1") == "pod-b"


async def test_only_the_holding_pod_releases_an_agent(backend: tuple[HubBackend, Inbox]) -> None:
    store, _ = backend
    await store.claim(agent_id="agent-1", pod_name="pod-b")
    assert await store.release(agent_id="agent-1", pod_name="pod-a") is False
    assert await store.lookup(agent_id="agent-1") == "pod-b"
    assert await store.release(agent_id="agent-1", pod_name="pod-b") is True
    assert await store.lookup(agent_id="agent-1") is None


async def test_a_heartbeat_recreates_what_vanished(backend: tuple[HubBackend, Inbox]) -> None:
    store, _ = backend
    await store.claim(agent_id="agent-1", pod_name="pod-a")
    await store.release(agent_id="agent-1", pod_name="pod-a")
    await store.refresh(agent_id="agent-1", pod_name="pod-a")
    await store.refresh_many(agent_ids=[f"agent-{i}" for i in range(2, 50)], pod_name="pod-c")
    assert await store.lookup(agent_id="agent-1") == "pod-a"
    assert await store.lookup(agent_id="agent-49") == "pod-c"


# -- Bus -----------------------------------------------------------------------------------------


async def test_a_message_reaches_the_subscribed_channel_whole(
    backend: tuple[HubBackend, Inbox],
) -> None:
    store, inbox = backend
    payload = bytes(range(256)) * 64
    assert await store.publish(channel=CHANNEL, data=payload) == 1
    await eventually(holds(lambda: bool(inbox.messages)), what="delivery")
    assert inbox.messages == [(CHANNEL, payload)]


async def test_messages_keep_their_order(backend: tuple[HubBackend, Inbox]) -> None:
    store, inbox = backend
    await asyncio.gather(*(store.publish(channel=CHANNEL, data=b"%d" % i) for i in range(200)))
    await eventually(holds(lambda: len(inbox.messages) == 200), what="200 deliveries")
    assert [data for _, data in inbox.messages] == [b"%d" % i for i in range(200)]


async def test_a_channel_nobody_listens_on_reaches_nobody(
    backend: tuple[HubBackend, Inbox],
) -> None:
    store, inbox = backend
    assert await store.publish(channel="pod:pod-gone:commands", data=b"x") == 0
    await store.publish(channel=CHANNEL, data=b"after")  # a marker: what came before is in
    await eventually(holds(lambda: bool(inbox.messages)), what="the marker")
    assert inbox.messages == [(CHANNEL, b"after")]


# -- ReplicaAddresses ----------------------------------------------------------------------------


async def test_a_replica_is_found_while_it_registers(backend: tuple[HubBackend, Inbox]) -> None:
    store, _ = backend
    assert await store.replica_address("pod-a") is None
    await store.register_replica(pod_name="pod-a", address="http://10.0.0.1:8081", ttl=30)
    assert await store.replica_address("pod-a") == "http://10.0.0.1:8081"


async def test_a_replica_that_stops_registering_is_forgotten(
    backend: tuple[HubBackend, Inbox],
) -> None:
    store, _ = backend
    await store.register_replica(pod_name="pod-a", address="http://10.0.0.1:8081", ttl=1)

    async def forgotten() -> bool:
        return await store.replica_address("pod-a") is None

    await eventually(forgotten, timeout=5, interval=0.1, what="the address expiring")


async def test_a_started_backend_answers_its_health_check(
    backend: tuple[HubBackend, Inbox],
) -> None:
    store, _ = backend
    assert await store.ping() is True
