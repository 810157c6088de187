"""Run a coroutine only while this replica leads: campaign, renew, stop acting, release.

Backend-agnostic: every backend implements `LeaderElector` (leader/base.py). Owns the timing
rules (retry period, renew deadline) and the log lines operators grep for; not the lease itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from streamspace.leader.base import LeaderElector
from streamspace.leader.clock import Clock, MonotonicClock

log = logging.getLogger("streamspace.leader")

T = TypeVar("T")
Outcome = Literal["finished", "crashed", "lost", "deadline", "stopped"]


class StopLeading(Exception):
    """Raised by the work when campaigning again cannot help (the agent was refused for
    good): the lease is released and `run_as_leader` raises it instead of campaigning."""


@dataclass
class LeaderTerm:
    """One tenure as leader: its fencing epoch and a local guard against acting too late.

    `last_renewed` is when the last successful acquire/renew *started*, so the lease surely
    runs until at least `last_renewed + lease_duration` on the backend.
    """

    agent_id: str
    epoch: int
    last_renewed: float
    renew_deadline: float
    clock: Clock
    stopped: StopLeading | None = field(default=None, repr=False)

    def still_leader(self) -> bool:
        """True while a renew that started less than `renew_deadline` ago succeeded.

        Work checks this before each action: a process that was paused (SIGSTOP, long GC,
        VM freeze) wakes up with this False and must not act until the loop re-confirms.
        """
        return self.clock.monotonic() - self.last_renewed < self.renew_deadline


Work = Callable[[LeaderTerm], Awaitable[None]]


async def run_as_leader(
    *,
    elector: LeaderElector,
    work: Work,
    retry_period: float,
    renew_deadline: float,
    clock: Clock | None = None,
) -> None:
    """Campaign until leader, run `work(term)` while leading, step down when the lease is lost.

    Returns when `work` returns by itself; raises the `StopLeading` the work raised, after
    releasing the lease. Cancelling this coroutine (SIGTERM) cancels the work and releases the
    lease before the cancellation propagates.
    """
    clock = clock or MonotonicClock()
    while True:
        term = await _campaign(
            elector=elector, clock=clock, retry_period=retry_period, renew_deadline=renew_deadline
        )
        log.info("leader election: became leader of %s (epoch %d)", term.agent_id, term.epoch)
        outcome = await _lead(elector=elector, term=term, work=work, retry_period=retry_period)
        if outcome == "finished":
            return
        if outcome == "stopped" and term.stopped is not None:
            raise term.stopped
        await clock.sleep(retry_period)


async def _campaign(
    *, elector: LeaderElector, clock: Clock, retry_period: float, renew_deadline: float
) -> LeaderTerm:
    """Try to acquire every `retry_period` until it works."""
    announced = False
    while True:
        started = clock.monotonic()
        epoch = await _call(
            elector.try_acquire(), clock=clock, seconds=renew_deadline, what="acquire"
        )
        if epoch is not None:
            return LeaderTerm(
                agent_id=elector.agent_id,
                epoch=epoch,
                last_renewed=started,
                renew_deadline=renew_deadline,
                clock=clock,
            )
        if not announced:
            log.info(
                "leader election: campaigning for %s (another holds the lease; retrying every %g s)",
                elector.agent_id,
                retry_period,
            )
            announced = True
        await clock.sleep(retry_period)


async def _lead(
    *, elector: LeaderElector, term: LeaderTerm, work: Work, retry_period: float
) -> Outcome:
    """Run the work beside the renew loop; whichever ends first ends the term."""
    work_task = asyncio.create_task(_run_work(work, term), name=f"leader-work-{term.epoch}")
    outcome: Outcome | None = None
    try:
        outcome = await _keep_renewing(
            elector=elector, term=term, work_task=work_task, retry_period=retry_period
        )
        return outcome
    finally:
        await _stop(work_task)
        if outcome in ("lost", "deadline"):
            why = "renew refused" if outcome == "lost" else "no renew within the renew deadline"
            log.warning(
                "leader election: lost leadership of %s (epoch %d): %s",
                term.agent_id,
                term.epoch,
                why,
            )
        if outcome != "lost":
            # After a missed deadline the lease is probably gone: release quietly, in case not.
            await _release(elector=elector, term=term, announce=outcome != "deadline")


async def _keep_renewing(
    *,
    elector: LeaderElector,
    term: LeaderTerm,
    work_task: asyncio.Task[Outcome],
    retry_period: float,
) -> Outcome:
    """Renew every `retry_period`; give up once no renew succeeded within the deadline."""
    clock = term.clock
    while True:
        deadline = term.last_renewed + term.renew_deadline
        pause = min(retry_period, deadline - clock.monotonic())
        finished = await _call(_wait_task(work_task), clock=clock, seconds=pause, what=None)
        if finished is not None:
            return finished
        started = clock.monotonic()
        if started >= deadline:
            return "deadline"
        renewed = await _call(
            elector.renew(), clock=clock, seconds=deadline - started, what="renew"
        )
        if renewed is False:
            return "lost"
        if renewed:
            term.last_renewed = started


async def _run_work(work: Work, term: LeaderTerm) -> Outcome:
    try:
        await work(term)
    except StopLeading as exc:
        term.stopped = exc
        return "stopped"
    except Exception:
        log.exception("leader work for %s (epoch %d) crashed", term.agent_id, term.epoch)
        return "crashed"
    return "finished"


async def _wait_task(task: asyncio.Task[T]) -> T:
    return await asyncio.shield(task)


async def _call(
    coro: Coroutine[Any, Any, T], *, clock: Clock, seconds: float, what: str | None
) -> T | None:
    """Run `coro` for at most `seconds` on `clock`; None on timeout or (logged) error."""
    task = asyncio.ensure_future(coro)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not task.done():
            await _stop(task)
    if task.cancelled():
        return None
    if (exc := task.exception()) is not None:
        if what is not None:
            log.warning("leader election: %s failed: %r", what, exc)
        return None
    return task.result()


async def _stop(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait until it has stopped, without swallowing our own cancellation."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # mark it retrieved, so asyncio does not log it again


async def _release(*, elector: LeaderElector, term: LeaderTerm, announce: bool) -> None:
    """Give the lease back (best effort, bounded) so a standby takes over at once."""
    released = await _call(
        _release_ok(elector), clock=term.clock, seconds=term.renew_deadline, what="release"
    )
    if released and announce:
        log.info("leader election: released leadership of %s (epoch %d)", term.agent_id, term.epoch)


async def _release_ok(elector: LeaderElector) -> bool:
    await elector.release()
    return True
