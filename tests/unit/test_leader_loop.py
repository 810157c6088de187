"""run_as_leader on a scripted elector and a virtual clock: no real time passes."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque

import pytest

from streamspace.leader.base import LeaderElector
from streamspace.leader.loop import LeaderTerm, StopLeading, run_as_leader

RETRY, DEADLINE, LEASE = 0.5, 2.0, 3.0


class VirtualClock:
    """Time moves only in `advance`; sleepers wake in deadline order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            if not future.done():
                future.set_result(None)
            await settle()
        self.now = target
        await settle()


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


class ScriptedElector(LeaderElector):
    """Answers from a script; `renew_with` is True, False, "hang" or an exception."""

    def __init__(self, *acquires: int | Exception | None) -> None:
        super().__init__(agent_id="agent-1", identity="replica-a", lease_duration=LEASE)
        self.acquires = deque(acquires)
        self.renew_with: bool | str | Exception = True
        self.acquire_calls: list[float] = []
        self.renew_calls = 0
        self.releases = 0
        self.clock: VirtualClock | None = None

    async def try_acquire(self) -> int | None:
        assert self.clock is not None
        self.acquire_calls.append(self.clock.now)
        answer = self.acquires.popleft() if self.acquires else None
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def renew(self) -> bool:
        self.renew_calls += 1
        if isinstance(self.renew_with, Exception):
            raise self.renew_with
        if self.renew_with == "hang":
            await asyncio.Event().wait()
        return bool(self.renew_with)

    async def release(self) -> None:
        self.releases += 1

    async def current_holder(self) -> str | None:
        return None


class Work:
    """Leader work that records its terms and whether it is running."""

    def __init__(self, *, finish_after: float | None = None, clock: VirtualClock) -> None:
        self.terms: list[LeaderTerm] = []
        self.running = False
        self.cancelled = 0
        self.finish_after = finish_after
        self.clock = clock

    async def __call__(self, term: LeaderTerm) -> None:
        self.terms.append(term)
        self.running = True
        try:
            await self.clock.sleep(self.finish_after if self.finish_after is not None else 1e9)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running = False


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def start(elector: ScriptedElector, work: Work, clock: VirtualClock) -> asyncio.Task[None]:
    elector.clock = clock
    return asyncio.create_task(
        run_as_leader(
            elector=elector, work=work, retry_period=RETRY, renew_deadline=DEADLINE, clock=clock
        )
    )


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait({task})


async def test_candidate_tries_every_retry_period_until_it_leads(
    clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamspace.leader")
    elector, work = ScriptedElector(None, None, 7), Work(clock=clock)
    task = start(elector, work, clock)
    await clock.advance(1.0)
    assert elector.acquire_calls == [0.0, 0.5, 1.0]
    assert work.running and work.terms[0].epoch == 7
    assert "leader election: became leader of agent-1 (epoch 7)" in caplog.messages
    await stop(task)


async def test_successful_renews_keep_the_work_running(clock: VirtualClock) -> None:
    elector, work = ScriptedElector(1), Work(clock=clock)
    task = start(elector, work, clock)
    await clock.advance(10 * DEADLINE)
    assert work.running and work.cancelled == 0
    assert elector.renew_calls == pytest.approx(10 * DEADLINE / RETRY, abs=1)
    assert work.terms[0].still_leader()
    await stop(task)


async def test_refused_renew_cancels_the_work_at_once(
    clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamspace.leader")
    elector, work = ScriptedElector(1), Work(clock=clock)
    task = start(elector, work, clock)
    await clock.advance(RETRY - 0.01)
    elector.renew_with = False
    await clock.advance(0.01)
    assert not work.running and work.cancelled == 1
    assert any("lost leadership of agent-1 (epoch 1): renew refused" in m for m in caplog.messages)
    assert elector.releases == 0
    await clock.advance(RETRY)
    assert elector.acquire_calls[-1] == clock.now, "back to campaigning"
    await stop(task)


async def test_renew_that_hangs_stops_the_work_at_the_deadline(clock: VirtualClock) -> None:
    elector, work = ScriptedElector(1), Work(clock=clock)
    task = start(elector, work, clock)
    elector.renew_with = "hang"
    await clock.advance(DEADLINE - 0.001)
    assert work.running
    await clock.advance(0.002)
    assert not work.running and work.cancelled == 1
    assert not work.terms[0].still_leader()
    await stop(task)


async def test_failing_renews_stop_the_work_at_the_deadline(
    clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamspace.leader")
    elector, work = ScriptedElector(1), Work(clock=clock)
    task = start(elector, work, clock)
    await clock.advance(RETRY)
    elector.renew_with = ConnectionError("redis went away")
    await clock.advance(DEADLINE - 0.001)
    assert work.running, "a few failed renews are tolerated until the deadline"
    await clock.advance(0.002)
    assert not work.running
    assert any("renew deadline" in m for m in caplog.messages)
    assert not any("released leadership" in m for m in caplog.messages)
    await stop(task)


async def test_term_is_not_valid_after_a_pause_longer_than_the_deadline(
    clock: VirtualClock,
) -> None:
    elector, work = ScriptedElector(1), Work(clock=clock)
    task = start(elector, work, clock)
    await clock.advance(0)
    term = work.terms[0]
    assert term.still_leader()
    clock.now += DEADLINE + 1  # the process was stopped: no timer ran meanwhile
    assert not term.still_leader()
    await stop(task)


async def test_cancelling_releases_the_lease_in_finally(
    clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamspace.leader")
    elector, work = ScriptedElector(4), Work(clock=clock)
    task = start(elector, work, clock)
    await clock.advance(1.0)
    await stop(task)
    assert task.cancelled()
    assert work.cancelled == 1 and elector.releases == 1
    assert "leader election: released leadership of agent-1 (epoch 4)" in caplog.messages


async def test_work_that_finishes_releases_and_returns(clock: VirtualClock) -> None:
    elector, work = ScriptedElector(2), Work(finish_after=1.0, clock=clock)
    task = start(elector, work, clock)
    await clock.advance(1.0)
    assert task.done() and task.exception() is None
    assert elector.releases == 1


async def test_crashed_work_releases_and_campaigns_again(clock: VirtualClock) -> None:
    elector = ScriptedElector(2, 3)
    crashes: list[int] = []

    async def crash(term: LeaderTerm) -> None:
        crashes.append(term.epoch)
        if term.epoch == 2:
            raise RuntimeError("boom")
        await clock.sleep(1e9)

    elector.clock = clock
    task = asyncio.create_task(
        run_as_leader(
            elector=elector, work=crash, retry_period=RETRY, renew_deadline=DEADLINE, clock=clock
        )
    )
    await clock.advance(RETRY)
    assert crashes == [2, 3] and elector.releases == 1
    await stop(task)


async def test_acquire_errors_are_retried(clock: VirtualClock) -> None:
    elector, work = ScriptedElector(OSError("no route to redis"), 9), Work(clock=clock)
    task = start(elector, work, clock)
    await clock.advance(RETRY)
    assert elector.acquire_calls == [0.0, RETRY]
    assert work.terms and work.terms[0].epoch == 9
    await stop(task)


async def test_work_that_stops_leading_releases_and_raises_instead_of_campaigning(
    clock: VirtualClock,
) -> None:
    """An agent refused for good (its key rotated) must not take term after term."""
    elector = ScriptedElector(2, 3)
    terms: list[int] = []

    class Refused(StopLeading):
        pass

    async def refused(term: LeaderTerm) -> None:
        terms.append(term.epoch)
        raise Refused("the control plane refused this agent for good")

    elector.clock = clock
    task = asyncio.create_task(
        run_as_leader(
            elector=elector, work=refused, retry_period=RETRY, renew_deadline=DEADLINE, clock=clock
        )
    )
    await clock.advance(RETRY * 4)
    assert task.done() and isinstance(task.exception(), Refused)
    assert terms == [2] and elector.releases == 1
