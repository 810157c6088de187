"""The `LeaderElector` contract: one active replica per logical agent, with a fencing epoch.

Backends (file, redis, swarm, kubernetes Lease) implement four small calls (acquire, renew,
release, current holder); the shared loop in leader/loop.py turns them into "run this
coroutine only while leader".
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod


def epoch_seed() -> int:
    """Where a new epoch counter starts: unix time in microseconds.

    A backend that loses its state (Redis flushed or restarted without persistence, a stack
    redeploy replacing the service labels, a deleted lock file) then still hands out epochs
    above every earlier one: a counter grows by one per change of holder, each of which takes
    far longer than a microsecond, so it never catches up with this clock.
    """
    return time.time_ns() // 1000


class LeaderElector(ABC):
    """One backend's view of the leadership of `agent_id`, for candidate `identity`."""

    def __init__(self, *, agent_id: str, identity: str, lease_duration: float) -> None:
        self.agent_id = agent_id
        self.identity = identity
        self.lease_duration = lease_duration

    @abstractmethod
    async def try_acquire(self) -> int | None:
        """Become leader if the lease is free or expired; return the new epoch, else None.

        The epoch (fencing token) strictly increases with every change of holder.
        """

    @abstractmethod
    async def renew(self) -> bool:
        """Extend our lease; False when we no longer hold it."""

    @abstractmethod
    async def release(self) -> None:
        """Give up the lease at once if we hold it, so a standby takes over quickly."""

    @abstractmethod
    async def current_holder(self) -> str | None:
        """Identity of the current (unexpired) holder, for status output."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release client resources."""
