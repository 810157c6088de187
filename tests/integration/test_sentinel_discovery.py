"""discovery.py against real servers: the Sentinel resolver names the master and follows a
failover, and a connection left on a demoted master is dropped and re-resolved."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from streamspace.agent_hub.discovery import RedisTarget, pooled_client, resolver
from streamspace.agent_hub.resp import Address, RespClient
from tests.support.cluster import eventually
from tests.support.processes import RedisServer
from tests.support.sentinel import MASTER_NAME, SentinelGroup

pytestmark = pytest.mark.redis


async def test_clients_follow_the_master_through_a_failover(
    sentinel_group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamspace.agent_hub.discovery")
    # REDIS_HOST is ignored with sentinels: nothing listens on port 1
    target = RedisTarget(
        url="redis://127.0.0.1:1/1", sentinels=_pairs(sentinel_group), master=MASTER_NAME
    )
    fast, pooled = RespClient(resolver(target)), pooled_client(target, max_connections=2)
    try:
        assert await fast.call("SET", "k", "before") == b"OK"
        assert await pooled.get("k") == b"before"
        assert (
            f"Redis Sentinel: master mymaster at 127.0.0.1:{sentinel_group.master.port}"
            in caplog.text
        )

        sentinel_group.master.kill()

        async def writable() -> bool:
            # Promoted first: until the old master has died, a write may still land on it.
            if await sentinel_group.master_port() != sentinel_group.replica.port:
                return False
            try:
                await fast.call("SET", "k", "after")
                await pooled.set("k2", "after")
            except RedisConnectionError:
                return False
            return True

        await eventually(writable, timeout=30, interval=0.2, what="the promoted replica")
        assert await sentinel_group.master_port() == sentinel_group.replica.port
        assert f"master mymaster at 127.0.0.1:{sentinel_group.replica.port}" in caplog.text
        async with aioredis.Redis(port=sentinel_group.replica.port, db=1) as promoted:
            assert await promoted.mget("k", "k2") == [b"after", b"after"]
    finally:
        await fast.close()
        await pooled.aclose()


async def test_no_sentinel_answering_is_a_connection_error(tmp_path: Path) -> None:
    nobody = RedisServer(log_dir=tmp_path).start()  # a plain node: not a sentinel
    try:
        target = RedisTarget(url="redis://127.0.0.1:1/0", sentinels=(("127.0.0.1", nobody.port),))
        with pytest.raises(RedisConnectionError, match="Redis Sentinel: no master 'mymaster'"):
            await resolver(target)()
    finally:
        nobody.kill()


async def test_a_connection_to_a_demoted_master_is_dropped_and_resolved_again(
    tmp_path: Path,
) -> None:
    """Without Sentinel's CLIENT KILL (say it could not reach the old master), writes on the
    old connection answer READONLY: that is a lost connection, the next use resolves again."""
    old, new = RedisServer(log_dir=tmp_path).start(), RedisServer(log_dir=tmp_path).start()
    master = {"port": old.port}

    async def resolve() -> Address:
        return Address(host="127.0.0.1", port=master["port"], db=1)

    target = RedisTarget(url="redis://127.0.0.1:1/1")
    fast, pooled = RespClient(resolve), pooled_client(target, max_connections=1, resolve=resolve)
    try:
        assert await fast.call("SET", "k", "1") == b"OK"
        assert await pooled.set("k", "1")
        async with aioredis.Redis(port=old.port) as demote:
            await demote.execute_command("REPLICAOF", "127.0.0.1", str(new.port))
        master["port"] = new.port
        with pytest.raises(RedisConnectionError, match="no longer the master"):
            await fast.call("SET", "k", "2")
        with pytest.raises(RedisConnectionError, match="now a slave"):
            await pooled.set("k", "2")
        assert await fast.call("SET", "k", "3") == b"OK"  # reconnected to the new master
        assert await pooled.set("k2", "3")
        async with aioredis.Redis(port=new.port, db=1) as r:
            assert await r.mget("k", "k2") == [b"3", b"3"]
    finally:
        await fast.close()
        await pooled.aclose()
        old.kill()
        new.kill()


def _pairs(sentinel_group: SentinelGroup) -> tuple[tuple[str, int], ...]:
    return tuple(("127.0.0.1", s.port) for s in sentinel_group.sentinels)
