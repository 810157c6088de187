"""The agent's Redis elector through Sentinel (REDIS_URL=redis+sentinel://...): the lease holder
keeps its lease across a master failover, renewing on the promoted replica."""

from __future__ import annotations

import pytest
from redis.exceptions import RedisError

from streamspace.config import load_agent_settings
from streamspace.leader.base import LeaderElector
from streamspace.leader.factory import build_elector
from tests.support.cluster import eventually
from tests.support.sentinel import MASTER_NAME, SentinelGroup

pytestmark = pytest.mark.redis


def elector(sentinel_group: SentinelGroup, identity: str) -> LeaderElector:
    settings = load_agent_settings(
        agent_id="sentinel-agent",
        control_plane_url="http://127.0.0.1:1",
        leader_election_backend="redis",
        redis_url=f"redis+sentinel://{sentinel_group.hosts}/{MASTER_NAME}/3",
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


async def _promoted(sentinel_group: SentinelGroup) -> bool:
    return await sentinel_group.master_port() == sentinel_group.replica.port
