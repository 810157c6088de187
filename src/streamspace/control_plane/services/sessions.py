"""Session use cases: create, list, get, terminate, hibernate, resume, and applying what agents
report. Each method owns its transaction and publishes events after commit."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.db.engine import unavailable
from streamspace.control_plane.db.records import (
    AuditEventRecord,
    SessionRecord,
    TemplateRecord,
    UserRecord,
)
from streamspace.control_plane.services import (
    commands,
    quotas,
    scheduler,
    webhooks,  # also: its flush listener queues the sessions' state-change events
)
from streamspace.control_plane.services.ports import CommandRouter, EventSink
from streamspace.control_plane.services.states import FINAL_STATES, check_transition
from streamspace.control_plane.services.templates import get_template
from streamspace.errors import NotFound, StreamSpaceError

log = logging.getLogger(__name__)
# a client retrying against a full quota yields one quota.reached event per this many seconds
QUOTA_EVENT_QUIET = 300.0
_USER_ACTIONS = {  # action -> (target state, agent command)
    "hibernate": ("hibernating", "hibernate_session"),
    "resume": ("waking", "wake_session"),
    "terminate": ("terminating", "stop_session"),
}


def set_state(
    session: SessionRecord, state: str, *, reason: str = "", action: str | None = None
) -> None:
    check_transition(session.state, state, action=action)
    now = datetime.now(UTC)
    session.state = state
    session.state_reason = reason
    session.state_changed_at = now
    session.updated_at = now
    if state == "terminated":
        session.terminated_at = now
    if state in ("running", "waking"):  # a fresh start is activity: idle time counts from here
        session.last_activity_at = now


def session_event(session: SessionRecord) -> dict[str, Any]:
    return {
        "id": session.id,
        "state": session.state,
        "reason": session.state_reason,
        "template": session.template_name,
        "agent_id": session.agent_id,
        "updated_at": session.updated_at.isoformat(),
    }


@functools.cache
def _list_query(*, own: bool, by_state: bool, include_terminated: bool) -> Select[Any]:
    """The session list statements, built once (building one costs more than running it)."""
    query = (
        select(SessionRecord.__table__, UserRecord.username.label("owner"))
        .join(UserRecord, UserRecord.id == SessionRecord.user_id)
        .where(SessionRecord.org_id == bindparam("org"))
    )
    if own:
        query = query.where(SessionRecord.user_id == bindparam("user"))
    if by_state:
        query = query.where(SessionRecord.state == bindparam("state"))
    elif not include_terminated:
        query = query.where(SessionRecord.state != "terminated")
    return query.order_by(SessionRecord.created_at.desc())


class SessionService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        router: CommandRouter,
        events: EventSink,
        agent_liveness: float,
        quota: quotas.QuotaPolicy | None = None,
    ) -> None:
        self._sessions, self._reads = sessions, reads
        self.quota = quota or quotas.QuotaPolicy()
        self._router = router
        self._events = events
        self._liveness = agent_liveness

    async def announce(self, session: SessionRecord) -> None:
        await self._events.publish(
            kind="session",
            org_id=session.org_id,
            user_id=session.user_id,
            data=session_event(session),
        )

    async def create(
        self,
        *,
        principal: Principal,
        template_name: str,
        region: str | None = None,
        platform: str | None = None,
    ) -> SessionRecord:
        async with self._sessions.begin() as db:
            template = await get_template(db, org_id=principal.org_id, name=template_name)
            size = self.quota.session_size(template)
            breach = await quotas.refusal(
                db,
                policy=self.quota,
                org_id=principal.org_id,
                user_id=principal.user_id,
                size=size,
            )
            if breach is None:
                session = await self._place(
                    db,
                    principal=principal,
                    template=template,
                    size=size,
                    region=region,
                    platform=platform,
                )
            else:
                # The one place a refused create is decided: its audit event and the org's
                # quota.reached webhook event commit in this transaction, then the caller
                # gets 403 quota_exceeded.
                db.add(
                    quotas.refused_event(principal=principal, template=template.name, breach=breach)
                )
                await webhooks.enqueue_unless_recent(
                    db,
                    org_id=principal.org_id,
                    event_type=webhooks.QUOTA_REACHED,
                    payload={
                        "quota": breach.describe(),
                        "user": principal.username,
                        "template": template.name,
                    },
                    quiet_for=QUOTA_EVENT_QUIET,
                )
        if breach is not None:
            raise breach.error()
        assert session.agent_id is not None  # _place gave it one
        await self._deliver(session.agent_id)
        await self.announce(session)
        return session

    async def _place(
        self,
        db: AsyncSession,
        *,
        principal: Principal,
        template: TemplateRecord,
        size: quotas.Amounts,
        region: str | None,
        platform: str | None,
    ) -> SessionRecord:
        """Pick an agent and add the session, its start command and its audit event."""
        agent = await scheduler.pick_agent(
            db, liveness=self._liveness, region=region, platform=platform
        )
        await self._router.ensure_reachable(agent.id)
        session = SessionRecord(
            org_id=principal.org_id,
            user_id=principal.user_id,
            template_id=template.id,
            template_name=template.name,
            agent_id=agent.id,
            state="pending",
            cpu_millicores=size.cpu_millicores or 0,
            memory_mb=size.memory_mb or 0,
        )
        db.add(session)
        await db.flush()
        spec = commands.session_spec(
            session=session, template=template, username=principal.username
        )
        commands.add_command(
            db, agent_id=agent.id, action="start_session", session_id=session.id, spec=spec
        )
        db.add(
            AuditEventRecord(
                org_id=principal.org_id,
                actor=principal.username,
                action="session.create",
                target=session.id,
                detail={"template": template.name, "agent": agent.id},
            )
        )
        return session

    async def _deliver(self, agent_id: str) -> None:
        """Send the command just committed. It is a row: if the database fails now (it went
        away right after the commit), the sweeper's resend or the agent's reconnect delivers
        it, so the request succeeded and must say so. A 503 here made the client retry and
        start a second session besides the one it was told had failed."""
        try:
            await self._router.dispatch(agent_id)
        except SQLAlchemyError as exc:
            if not unavailable(exc):
                raise
            log.warning(
                "command for agent %s committed; delivering it now failed (%s), "
                "the sweeper resends it",
                agent_id,
                type(exc).__name__,
            )

    async def _visible(
        self, db: AsyncSession, *, principal: Principal, session_id: str, lock: bool = False
    ) -> SessionRecord:
        """The session if the caller may see it; another user's session is simply not found."""
        session = await db.get(SessionRecord, session_id, with_for_update=lock)
        if (
            session is None
            or session.org_id != principal.org_id
            or (session.user_id != principal.user_id and not principal.is_admin)
        ):
            raise NotFound("session not found")
        return session

    async def get(self, *, principal: Principal, session_id: str) -> SessionRecord:
        async with self._reads() as db:
            return await self._visible(db, principal=principal, session_id=session_id)

    async def list(
        self,
        *,
        principal: Principal,
        all_users: bool = False,
        state: str | None = None,
        include_terminated: bool = False,
    ) -> Sequence[Row[Any]]:
        """Read-only rows (record columns plus `owner`, the username) in one query: this is
        the UI's most frequent call."""
        own = not (all_users and principal.is_admin)
        params = {"org": principal.org_id}
        if own:
            params["user"] = principal.user_id
        if state:
            params["state"] = state
        query: Select[Any] = _list_query(
            own=own, by_state=bool(state), include_terminated=include_terminated
        )
        async with self._reads() as db:
            rows: Sequence[Row[Any]] = (await db.execute(query, params)).all()
        return rows

    async def terminate_all(self, *, principal: Principal, user_id: str) -> Sequence[str]:
        """Terminate every session of a user of the caller's org that is not ended (a removed
        user's). Returns the ids that could not be terminated now (their agent unreachable,
        say), each logged: they stay for an admin to end later."""
        async with self._reads() as db:
            ids = (
                await db.scalars(
                    select(SessionRecord.id).where(
                        SessionRecord.user_id == user_id,
                        SessionRecord.org_id == principal.org_id,
                        SessionRecord.state.not_in(("terminating", *FINAL_STATES)),
                    )
                )
            ).all()
        left: tuple[str, ...] = ()
        for session_id in ids:
            try:
                await self.act(principal=principal, session_id=session_id, action="terminate")
            except StreamSpaceError as exc:
                log.warning("session %s of removed user kept: %s", session_id, exc.message)
                left += (session_id,)
        return left

    async def act(self, *, principal: Principal, session_id: str, action: str) -> SessionRecord:
        """hibernate | resume | terminate, guarded by the state machine (409 when impossible)."""
        target, command = _USER_ACTIONS[action]
        async with self._sessions.begin() as db:
            session = await self._visible(db, principal=principal, session_id=session_id, lock=True)
            if action == "terminate" and session.agent_id is None:
                set_state(session, "terminated", reason="terminated by user")
            else:
                check_transition(session.state, target, action=action)
                if session.agent_id is not None:
                    await self._router.ensure_reachable(session.agent_id)
                set_state(
                    session,
                    target,
                    reason=f"{action} requested by {principal.username}",
                    action=action,
                )
                commands.add_command(
                    db, agent_id=str(session.agent_id), action=command, session_id=session.id
                )
            db.add(
                AuditEventRecord(
                    org_id=principal.org_id,
                    actor=principal.username,
                    action=f"session.{action}",
                    target=session.id,
                )
            )
        if session.agent_id is not None and session.state != "terminated":
            await self._deliver(session.agent_id)
        await self.announce(session)
        return session
