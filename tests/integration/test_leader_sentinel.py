"""The agent's Redis elector through Sentinel (REDIS_URL=redis+sentinel://...): the lease holder
keeps its lease across a master failover, renewing on the promoted replica, even when the
replica never received the holder's last write."""

from __future__ import annotations

import uuid

import pytest
import redis
from redis.exceptions import RedisError

from streamspace.config import load_agent_settings
from streamspace.leader.base import LeaderElector
from streamspace.leader.factory import build_elector
from streamspace.leader.redis import leader_key
from tests.support.cluster import eventually
from tests.support.sentinel import MASTER_NAME, SentinelGroup
from tests.support.services import redis_url

pytestmark = pytest.mark.redis


def elector(sentinel_group: SentinelGroup, identity: str) -> LeaderElector:
    return _elector(f"redis+sentinel://{sentinel_group.hosts}/{MASTER_NAME}/3", identity)


def _elector(url: str, identity: str, agent_id: str = "sentinel-agent") -> LeaderElector:
    settings = load_agent_settings(
        agent_id=agent_id,
        control_plane_url="http://127.0.0.1:1",
        leader_election_backend="redis",
        redis_url=url,
        pod_name=identity,
        lease_duration=20,
        renew_deadline=10,
        retry_period=1,
    )
    return build_elector(settings)


async def test_the_leader_keeps_its_lease_across_a_failover(sentinel_group: SentinelGroup) -> None:
    a, b = elector(sentinel_group, "a"), elector(sentinel_group, "b")
    try:
        assert await a.try_acquire() is not None
        assert await b.try_acquire() is None
        sentinel_group.master.kill()
        await eventually(
            lambda: _promoted(sentinel_group), timeout=30, what="the sentinels promote the replica"
        )

        async def renewed() -> bool:
            try:
                return await a.renew()
            except RedisError:
                return False  # the old master's connection, or the failover still going on

        await eventually(renewed, timeout=30, what="a renews on the new master")
        assert await b.try_acquire() is None
        assert await b.current_holder() == "a"
        assert await a.try_acquire() is not None  # still the holder
    finally:
        await a.close()
        await b.close()


async def test_a_holder_whose_last_write_a_failover_lost_takes_its_lease_back() -> None:
    """Replication is asynchronous: the promoted replica may lack the lease key and even the
    epoch counter. The holder's next renew re-creates both, so nobody else can take the lease
    meanwhile and a later holder still gets a higher epoch."""
    agent_id = f"lost-write-{uuid.uuid4().hex[:8]}"
    a, b = _elector(redis_url(), "a", agent_id), _elector(redis_url(), "b", agent_id)
    try:
        first = await a.try_acquire()
        assert first is not None
        with redis.Redis.from_url(redis_url()) as client:  # what the promoted replica lacks
            client.delete(leader_key(agent_id), f"{leader_key(agent_id)}:epoch")
        assert await a.renew()
        assert await b.try_acquire() is None
        assert await b.current_holder() == "a"
        await a.release()
        second = await b.try_acquire()
        assert second is not None and second > first
    finally:
        await a.close()
        await b.close()


async def _promoted(sentinel_group: SentinelGroup) -> bool:
    return await sentinel_group.master_port() == sentinel_group.replica.port
