"""The LoginThrottle contract, run against the in-process counters and Redis: reservations are
atomic under concurrency, a refusal takes nothing, settle frees slots, reset forgets; and a
Redis throttle that cannot reach Redis falls back to this replica's counters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from streamspace.control_plane.auth.throttle import (
    LoginThrottle,
    MemoryLoginThrottle,
    RedisLoginThrottle,
)
from streamspace.errors import Unavailable
from tests.support.processes import RedisServer, free_port
from tests.support.services import flush_redis

BUDGET = 3


@pytest.fixture(params=["memory", "redis"])
async def throttle(request: pytest.FixtureRequest) -> AsyncIterator[LoginThrottle]:
    if request.param == "memory":
        yield MemoryLoginThrottle(max_failures=BUDGET, window=60)
        return
    client = aioredis.Redis.from_url(f"{await flush_redis()}/0")
    yield RedisLoginThrottle(client=client, max_failures=BUDGET, window=60)
    await client.aclose()


async def test_concurrent_reservations_never_exceed_the_budget(throttle: LoginThrottle) -> None:
    waits = await asyncio.gather(*(throttle.reserve(keys=["user:a", f"ip:{i}"]) for i in range(50)))
    assert waits.count(0) == BUDGET
    assert set(waits) == {0, 1}  # the others wait for attempts in flight, not for a window


async def fail(throttle: LoginThrottle, keys: list[str]) -> None:
    assert await throttle.reserve(keys=keys) == 0
    await throttle.settle(keys=keys, failed=True)


async def test_a_refused_attempt_spends_no_other_budget(throttle: LoginThrottle) -> None:
    for i in range(BUDGET):
        await fail(throttle, [f"user:u{i}", "ip:x"])
    assert 1 < await throttle.reserve(keys=["user:victim", "ip:x"]) <= 60  # the address is spent
    for i in range(BUDGET):  # ... and the victim's budget is whole
        await fail(throttle, ["user:victim", f"ip:y{i}"])
    assert await throttle.reserve(keys=["user:victim", "ip:z"]) > 1


async def test_settle_frees_slots_and_reset_forgets_failures(throttle: LoginThrottle) -> None:
    for _ in range(BUDGET):
        assert await throttle.reserve(keys=["user:a"]) == 0
    assert await throttle.reserve(keys=["user:a"]) == 1
    await throttle.settle(keys=["user:a"], failed=False)
    assert await throttle.reserve(keys=["user:a"]) == 0
    for _ in range(BUDGET):
        await throttle.settle(keys=["user:a"], failed=True)
    assert await throttle.reserve(keys=["user:a"]) > 1
    await throttle.reset(keys=["user:a"])
    assert await throttle.reserve(keys=["user:a"]) == 0
    await throttle.settle(keys=["user:never-seen"], failed=False)  # no slot: none goes negative
    for _ in range(BUDGET):
        assert await throttle.reserve(keys=["user:never-seen"]) == 0
    assert await throttle.reserve(keys=["user:never-seen"]) == 1


async def test_without_redis_each_replica_keeps_its_own_budget() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    throttle = RedisLoginThrottle(client=client, max_failures=BUDGET, window=60)
    try:
        waits = await asyncio.gather(*(throttle.reserve(keys=["user:a"]) for _ in range(10)))
        assert waits.count(0) == BUDGET
        for _ in range(BUDGET):
            await throttle.settle(keys=["user:a"], failed=True)
        assert await throttle.reserve(keys=["user:a"]) > 1
        await throttle.reset(keys=["user:a"])  # the local counters; Redis's error swallowed
        assert await throttle.reserve(keys=["user:a"]) == 0
        with pytest.raises(Unavailable):
            await throttle.reset_shared(keys=["user:a"])
        with pytest.raises(Unavailable):  # an admin's clearing says it did not happen
            await throttle.clear(keys=["user:a"])
    finally:
        await client.aclose()


async def test_slots_taken_while_redis_was_down_are_given_back_here(tmp_path: Path) -> None:
    """Attempts let in by this replica's counters while Redis was unreachable end after Redis
    is back: their slots are freed here (else the replica's budget would shrink for good),
    and an attempt Redis let in meanwhile keeps its slot there."""
    port = free_port()
    client = aioredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    throttle = RedisLoginThrottle(client=client, max_failures=BUDGET, window=60)
    keys = ["user:a", "ip:proxy"]
    server = None
    try:
        for _ in range(BUDGET):  # Redis down: the local budget is spent
            assert await throttle.reserve(keys=keys) == 0
        assert await throttle.reserve(keys=keys) == 1
        server = RedisServer(log_dir=tmp_path, port=port).start()
        assert await throttle.reserve(keys=keys) == 0  # Redis back: it takes a slot there
        for _ in range(BUDGET):  # the local attempts end
            await throttle.settle(keys=keys, failed=False)
        assert int(await client.get("loginbusy:ip:proxy") or 0) == 1  # Redis's attempt's
        server.stop()
        # Redis down again: the local budget is whole again
        assert [await throttle.reserve(keys=keys) for _ in range(BUDGET)] == [0] * BUDGET
    finally:
        if server is not None and server.alive:
            server.stop()
        await client.aclose()
