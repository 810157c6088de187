"""The clock leadership code waits on: monotonic time and sleep, injectable for virtual time.

Owns only the `Clock` protocol and the real `MonotonicClock`; tests bring their own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and a sleep that honours them."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` have passed on this clock."""
        ...


class MonotonicClock:
    """The process's real clock (CLOCK_MONOTONIC, system-wide on Linux)."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))
