"""The command sweeper, one replica at a time: re-sends unacknowledged commands, times out
commands past their deadline, fails sessions stuck starting, marks silent agents offline, and
(once a minute) deletes expired login sessions, and (once an hour) audit events past
AUDIT_RETENTION_DAYS."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.background.lease import try_lease
from streamspace.control_plane.db.records import AgentRecord, LoginSessionRecord, SessionRecord
from streamspace.control_plane.hub.hub import AgentHub
from streamspace.control_plane.metrics import Metrics
from streamspace.control_plane.services import audit, commands
from streamspace.control_plane.services.sessions import SessionService, set_state
from streamspace.control_plane.services.states import can_transition

log = logging.getLogger(__name__)
LEASE = "command-sweeper"
LOGIN_PURGE_INTERVAL = 60.0  # seconds
AUDIT_PURGE_INTERVAL = 3600.0  # seconds


class Sweeper:
    def __init__(
        self,
        *,
        db: async_sessionmaker[AsyncSession],
        hub: AgentHub,
        settings: ControlPlaneSettings,
        metrics: Metrics,
        sessions: SessionService,
    ) -> None:
        self._db, self._hub, self._settings = db, hub, settings
        self._metrics, self._sessions = metrics, sessions
        self._logins_purged: float | None = None
        self._audit_purged: float | None = None

    async def run(self) -> None:
        interval = self._settings.sweep_interval
        while True:
            try:
                if await try_lease(self._db, name=LEASE, holder=self._hub.pod, ttl=interval * 3):
                    await self.sweep_once()
            except Exception:
                log.exception("command sweeper pass failed; retrying next interval")
            await asyncio.sleep(interval)

    async def sweep_once(self) -> None:
        await self._resend()
        await self._expire_commands()
        await self._fail_stuck_sessions()
        await self._mark_silent_agents()
        last = self._logins_purged
        if last is None or time.monotonic() - last >= LOGIN_PURGE_INTERVAL:
            await self._purge_expired_logins()
        last = self._audit_purged
        if last is None or time.monotonic() - last >= AUDIT_PURGE_INTERVAL:
            await self._purge_old_audit_events()

    async def _purge_expired_logins(self) -> None:
        """Expired logins are refused anyway; their rows go here, off the login path."""
        async with self._db.begin() as db:
            await db.execute(
                delete(LoginSessionRecord).where(LoginSessionRecord.expires_at < datetime.now(UTC))
            )
        self._logins_purged = time.monotonic()

    async def _purge_old_audit_events(self) -> None:
        days = self._settings.audit_retention_days
        if days:
            cutoff = datetime.now(UTC) - timedelta(days=days)
            if purged := await audit.purge(self._db, before=cutoff):
                log.info("deleted %d audit events older than %d days", purged, days)
        self._audit_purged = time.monotonic()

    async def _resend(self) -> None:
        async with self._db() as db:
            agents = await commands.agents_with_due_commands(
                db, resend_after=self._settings.command_ack_timeout
            )
        for agent_id in agents:
            await self._hub.dispatch(agent_id, resend_after=self._settings.command_ack_timeout)

    async def _expire_commands(self) -> None:
        changed: list[SessionRecord] = []
        async with self._db.begin() as db:
            for command in await commands.expired_commands(
                db, deadline=self._settings.command_deadline
            ):
                command.status, command.error = "timeout", "no result before the deadline"
                self._metrics.commands_failed.labels(reason="timeout").inc()
                session = (
                    await db.get(SessionRecord, command.session_id) if command.session_id else None
                )
                if (
                    session is not None
                    and can_transition(session.state, "failed")
                    and session.state not in ("running", "hibernated")
                ):
                    set_state(session, "failed", reason=f"{command.action} timed out")
                    changed.append(session)
        for session in changed:
            await self._sessions.announce(session)

    async def _fail_stuck_sessions(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self._settings.session_start_deadline)
        async with self._db.begin() as db:
            stuck = list(
                (
                    await db.scalars(
                        select(SessionRecord).where(
                            SessionRecord.state.in_(("pending", "starting")),
                            SessionRecord.state_changed_at < cutoff,
                        )
                    )
                ).all()
            )
            for session in stuck:
                set_state(
                    session,
                    "failed",
                    reason="session did not start before the deadline "
                    f"({int(self._settings.session_start_deadline)} s)",
                )
        for session in stuck:
            await self._sessions.announce(session)

    async def _mark_silent_agents(self) -> None:
        liveness = self._settings.heartbeat_interval * self._settings.heartbeat_missed_limit
        cutoff = datetime.now(UTC) - timedelta(seconds=liveness)
        async with self._db.begin() as db:
            # loaded, not a bulk UPDATE: each agent going offline queues its webhook event in
            # this transaction (services/webhooks.py sees the change at flush)
            silent = await db.scalars(
                select(AgentRecord)
                .where(AgentRecord.status == "online", AgentRecord.last_heartbeat < cutoff)
                .with_for_update(skip_locked=True)
            )
            for agent in silent.all():
                agent.status = "offline"
