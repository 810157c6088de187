"""The idle reaper, one replica at a time: hibernates sessions idle longer than their
template's idle timeout and terminates sessions past their maximum duration, each with a
reason recorded and an event to the owner."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.background.lease import try_lease
from streamspace.control_plane.db.records import SessionRecord, TemplateRecord
from streamspace.control_plane.principal import Principal
from streamspace.control_plane.services.sessions import SessionService
from streamspace.errors import StreamSpaceError

log = logging.getLogger(__name__)
LEASE = "idle-reaper"


def system(session: SessionRecord, actor: str) -> Principal:
    return Principal(user_id=session.user_id, org_id=session.org_id, username=actor, role="admin")


class IdleReaper:
    def __init__(
        self,
        *,
        db: async_sessionmaker[AsyncSession],
        settings: ControlPlaneSettings,
        pod: str,
        sessions: SessionService,
    ) -> None:
        self._db, self._settings, self._pod, self._sessions = db, settings, pod, sessions

    async def run(self) -> None:
        interval = self._settings.reaper_interval
        while True:
            await asyncio.sleep(interval)
            try:
                if await try_lease(self._db, name=LEASE, holder=self._pod, ttl=interval * 3):
                    await self.reap_once()
            except Exception:
                log.exception("idle reaper pass failed; retrying next interval")

    async def due(self) -> tuple[list[SessionRecord], list[SessionRecord]]:
        now = datetime.now(UTC)
        async with self._db() as db:
            rows = (
                await db.execute(
                    select(SessionRecord, TemplateRecord)
                    .join(TemplateRecord, TemplateRecord.id == SessionRecord.template_id)
                    .where(SessionRecord.state.in_(("running", "hibernated")))
                )
            ).all()
        overdue = [s for s, t in rows if s.created_at < now - timedelta(seconds=t.max_duration_s)]
        idle = [
            s
            for s, t in rows
            if s.state == "running"
            and s not in overdue
            and s.last_activity_at < now - timedelta(seconds=t.idle_timeout_s)
        ]
        return idle, overdue

    async def reap_once(self) -> None:
        idle, overdue = await self.due()
        for session, action, why in [
            *((s, "hibernate", "idle timeout") for s in idle),
            *((s, "terminate", "maximum duration") for s in overdue),
        ]:
            log.info(
                "idle reaper (%s): %s session %s (%s reached)", self._pod, action, session.id, why
            )
            try:
                await self._sessions.act(
                    principal=system(session, f"system:{why}"), session_id=session.id, action=action
                )
            except StreamSpaceError as exc:
                log.warning(
                    "idle reaper could not %s session %s: %s", action, session.id, exc.message
                )
