"""Session activity from viewer traffic, batched: relays `touch` in memory, and a loop writes
`last_activity_at` for the touched sessions every few seconds (never once per frame)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import SessionRecord

log = logging.getLogger(__name__)


class ActivityTracker:
    def __init__(self, *, db: async_sessionmaker[AsyncSession], interval: float = 10.0) -> None:
        self._db = db
        self._interval = interval
        self._touched: set[str] = set()

    def touch(self, session_id: str) -> None:
        self._touched.add(session_id)

    async def flush(self) -> int:
        touched, self._touched = self._touched, set()
        if touched:
            async with self._db.begin() as db:
                await db.execute(
                    update(SessionRecord)
                    .where(SessionRecord.id.in_(touched))
                    .values(last_activity_at=datetime.now(UTC))
                )
        return len(touched)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                log.exception("could not record session activity; retrying")
