"""Reading a platform's watch in tests: the next report about one session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from streamspace.agents.platforms.base import ObservedSession


async def next_report(reports: AsyncIterator[ObservedSession], session_id: str) -> ObservedSession:
    """The watch's next report about `session_id` (others are skipped), within a minute."""
    async with asyncio.timeout(60):
        async for observed in reports:
            if observed.session_id == session_id:
                return observed
    raise AssertionError("the watch ended")
