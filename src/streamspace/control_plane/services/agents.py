"""Agents: registration with the bootstrap key, admin approval, per-agent keys (stored hashed,
delivered once), and applying what agents report (heartbeats, command results, status)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import AgentRecord, AuditEventRecord, SessionRecord
from streamspace.control_plane.services import commands
from streamspace.control_plane.services.ports import EventSink, KeyRevoker, announce_agent
from streamspace.control_plane.services.sessions import set_state
from streamspace.control_plane.services.states import can_transition
from streamspace.errors import Conflict, NotFound, PermissionDenied, Unauthenticated
from streamspace.protocol import close_codes

log = logging.getLogger(__name__)
# close reasons for a connection whose key an admin revoked (4403 and 4401)
REJECTED = "this agent was rejected by an admin"
ROTATED = "this agent's key was rotated; restart it with the new key"

# command action -> (state on completion, state on failure)
_OUTCOME = {
    "start_session": ("running", "failed"),
    "wake_session": ("running", "failed"),
    "hibernate_session": ("hibernated", "running"),
    "stop_session": ("terminated", "failed"),
}
# observed platform state -> session states it resolves
_OBSERVED = {
    "running": ("running", ("pending", "starting", "waking", "failed")),
    "hibernated": ("hibernated", ("hibernating", "running")),
    "failed": ("failed", ("pending", "starting", "running", "waking", "hibernating")),
    "missing": ("failed", ("running", "waking", "hibernating", "hibernated")),
}


@dataclass(frozen=True)
class Outcome:
    """A command result applied: its action, and the seconds from the command being issued
    (its row created) to this result."""

    action: str
    seconds: float


def new_agent_key() -> str:
    return "ssa_" + secrets.token_hex(32)


def hash_key(key: str) -> str:
    """A fast hash is right for a 256-bit random key (no brute force possible), and keeps
    agent authentication cheap on every request, unlike bcrypt."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_key(agent: AgentRecord, key_hash: str) -> None:
    """Raise if a connection made with `key_hash` no longer speaks for the agent: an admin
    rejected it (PermissionDenied `agent_rejected`) or rotated its key (`key_revoked`)."""
    if agent.approval_status != "approved":
        raise PermissionDenied(f"agent {agent.id} was rejected", code="agent_rejected")
    if agent.api_key_hash is None or not hmac.compare_digest(agent.api_key_hash, key_hash):
        raise Unauthenticated(f"agent {agent.id}'s key was rotated", code="key_revoked")


class AgentService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bootstrap_key: str | None,
        announce: Any,
        events: EventSink | None = None,
        revoker: KeyRevoker | None = None,
    ) -> None:
        self._sessions = sessions
        self._bootstrap = bootstrap_key
        self._announce = announce  # async (SessionRecord) -> None
        self._events = events
        self._revoker = revoker  # closes connections made with a revoked key, cluster-wide

    async def _agent_changed(self, agent: AgentRecord) -> None:
        """Admins' UI sockets hear of a new, approved or rejected agent at once."""
        await announce_agent(
            self._events,
            {
                "id": agent.id,
                "status": agent.status,
                "approval_status": agent.approval_status,
                "pod_name": agent.pod_name,
                "epoch": agent.epoch,
            },
        )

    def is_bootstrap(self, key: str) -> bool:
        return bool(self._bootstrap) and hmac.compare_digest(key, str(self._bootstrap))

    async def authenticate(self, *, key: str) -> AgentRecord:
        """The approved agent owning this key; the bootstrap key never authenticates here."""
        if not key:
            raise Unauthenticated("missing X-Agent-API-Key header", code="missing_agent_key")
        async with self._sessions() as db:
            agent = await db.scalar(
                select(AgentRecord).where(AgentRecord.api_key_hash == hash_key(key))
            )
        if agent is None:
            if self.is_bootstrap(key):
                raise PermissionDenied(
                    "the bootstrap key only admits registration; "
                    "wait for approval and use the agent's own key",
                    code="bootstrap_key_not_allowed",
                )
            raise Unauthenticated("invalid agent key", code="invalid_agent_key")
        if agent.approval_status != "approved":
            raise PermissionDenied(
                f"agent {agent.id} is {agent.approval_status}", code="agent_not_approved"
            )
        return agent

    async def register(
        self, *, key: str, agent_id: str, fields: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Returns (HTTP status, body). New agents land pending; the key is handed over once."""
        if not key:
            raise Unauthenticated("missing X-Agent-API-Key header", code="missing_agent_key")
        try:
            return await self._register_once(key=key, agent_id=agent_id, fields=fields)
        except IntegrityError:
            # Replicas of one agent starting together: another one's first registration
            # inserted the row between our read and our insert; now it is there to read.
            return await self._register_once(key=key, agent_id=agent_id, fields=fields)

    async def _register_once(
        self, *, key: str, agent_id: str, fields: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        async with self._sessions.begin() as db:
            agent = await db.get(AgentRecord, agent_id, with_for_update=True)
            own = (
                agent is not None
                and agent.api_key_hash is not None
                and hmac.compare_digest(agent.api_key_hash, hash_key(key))
            )
            if not own and not self.is_bootstrap(key):
                raise Unauthenticated("invalid agent key", code="invalid_agent_key")
            new = agent is None
            if agent is None:
                agent = AgentRecord(id=agent_id, approval_status="pending", status="offline")
                db.add(agent)
                db.add(
                    AuditEventRecord(
                        actor=f"agent:{agent_id}", action="agent.register", target=agent_id
                    )
                )
                log.info("agent %s registered with the bootstrap key; pending approval", agent_id)
            self._apply_fields(agent, fields)
            answer = self._registration_answer(agent, own=own)
        if new:
            await self._agent_changed(agent)
        return answer

    @staticmethod
    def _apply_fields(agent: AgentRecord, fields: dict[str, Any]) -> None:
        capacity = fields.get("capacity") or {}
        agent.platform = fields["platform"]
        agent.region = fields.get("region") or "default"
        agent.max_sessions = int(capacity.get("maxSessions", agent.max_sessions or 10))
        agent.capacity = capacity
        agent.agent_metadata = fields.get("metadata") or {}

    @staticmethod
    def _registration_answer(agent: AgentRecord, *, own: bool) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"agentId": agent.id, "approvalStatus": agent.approval_status}
        if agent.approval_status == "rejected":
            raise PermissionDenied(
                f"agent {agent.id} was rejected by an admin", code="agent_rejected"
            )
        if agent.approval_status == "pending":
            body["message"] = "registered; waiting for an admin to approve this agent"
            return 202, body
        if own:
            return 200, body
        if agent.pending_key:  # approved: deliver the agent's own key, exactly once
            body["apiKey"], agent.pending_key, agent.key_delivered = agent.pending_key, None, True
            body["message"] = "approved; store this key, it is shown only once"
            return 200, body
        raise PermissionDenied(
            f"agent {agent.id} already has its own key; the bootstrap key cannot act for it",
            code="bootstrap_key_not_allowed",
        )

    async def approve(self, *, agent_id: str, admin: str) -> AgentRecord:
        async with self._sessions.begin() as db:
            agent = await self._get(db, agent_id)
            if agent.approval_status == "approved":
                raise Conflict(f"agent {agent_id} is already approved", code="already_approved")
            key = new_agent_key()
            agent.approval_status, agent.api_key_hash, agent.pending_key = (
                "approved",
                hash_key(key),
                key,
            )
            agent.approved_by, agent.approved_at = admin, datetime.now(UTC)
            db.add(AuditEventRecord(actor=admin, action="agent.approve", target=agent_id))
        await self._agent_changed(agent)
        return agent

    async def reject(self, *, agent_id: str, admin: str) -> AgentRecord:
        """Reject the agent: its key stops working, and its open connection, on whichever
        replica holds it, is closed with 4403."""
        async with self._sessions.begin() as db:
            agent = await self._get(db, agent_id)
            old_hash = agent.api_key_hash
            agent.approval_status, agent.api_key_hash, agent.pending_key = "rejected", None, None
            db.add(AuditEventRecord(actor=admin, action="agent.reject", target=agent_id))
        await self._revoke(
            agent_id=agent_id,
            key_hash=old_hash,
            code=close_codes.FORBIDDEN,
            reason=REJECTED,
        )
        await self._agent_changed(agent)
        return agent

    async def create_with_key(
        self, *, agent_id: str, platform: str, region: str, max_sessions: int, admin: str
    ) -> str:
        """Pre-create an approved agent for unattended installs; returns its key (shown once)."""
        key = new_agent_key()
        async with self._sessions.begin() as db:
            if await db.get(AgentRecord, agent_id) is not None:
                raise Conflict(f"agent {agent_id} already exists", code="agent_exists")
            db.add(
                AgentRecord(
                    id=agent_id,
                    platform=platform,
                    region=region,
                    max_sessions=max_sessions,
                    approval_status="approved",
                    api_key_hash=hash_key(key),
                    key_delivered=True,
                    approved_by=admin,
                    approved_at=datetime.now(UTC),
                )
            )
        return key

    async def rotate_key(self, *, agent_id: str, actor: str) -> str:
        key = new_agent_key()
        async with self._sessions.begin() as db:
            agent = await self._get(db, agent_id)
            if agent.approval_status != "approved":
                raise Conflict("only approved agents have keys", code="agent_not_approved")
            old_hash = agent.api_key_hash
            agent.api_key_hash, agent.pending_key, agent.key_delivered = hash_key(key), None, True
            db.add(AuditEventRecord(actor=actor, action="agent.rotate_key", target=agent_id))
        await self._revoke(
            agent_id=agent_id,
            key_hash=old_hash,
            code=close_codes.UNAUTHENTICATED,
            reason=ROTATED,
        )
        return key

    async def _revoke(self, *, agent_id: str, key_hash: str | None, code: int, reason: str) -> None:
        """After the commit: the old key's connection closes wherever it is. Reports from it
        are refused anyway (`_reporter` checks the key), so a lost announcement cannot make
        a revoked key's reports count."""
        if key_hash is not None and self._revoker is not None:
            log.info("agent %s: key revoked (%s); closing its connection", agent_id, reason)
            await self._revoker.revoke(
                agent_id=agent_id, key_hash=key_hash, code=code, reason=reason
            )

    @staticmethod
    async def _reporter(db: AsyncSession, *, agent_id: str, epoch: int, key_hash: str) -> bool:
        """May this connection's report be applied? False for a stale epoch (ignored);
        raises when the key it connected with was revoked since (rejected or rotated)."""
        agent = await db.get(AgentRecord, agent_id)
        if agent is None:
            return False
        check_key(agent, key_hash)
        return agent.epoch == epoch

    @staticmethod
    async def _get(db: AsyncSession, agent_id: str) -> AgentRecord:
        agent = await db.get(AgentRecord, agent_id, with_for_update=True)
        if agent is None:
            raise NotFound(f"agent {agent_id} not found")
        return agent

    # -- messages from agents ----------------------------------------------------------------

    async def command_outcome(
        self,
        *,
        agent_id: str,
        epoch: int,
        key_hash: str,
        command_id: str,
        status: str,
        error: str = "",
        result: dict[str, Any] | None = None,
    ) -> Outcome | None:
        """Apply ack/complete/failed once; drive the session's state. Returns what was
        applied, None when ignored (stale epoch, unknown, or a duplicate); raises (nothing
        applied) for another agent's command or a revoked key."""
        async with self._sessions.begin() as db:
            if not await self._reporter(db, agent_id=agent_id, epoch=epoch, key_hash=key_hash):
                return None
            command = await commands.record_outcome(
                db,
                agent_id=agent_id,
                command_id=command_id,
                status=status,
                error=error,
                result=result,
            )
            if command is None:
                return None
            done = Outcome(
                action=command.action,
                seconds=(datetime.now(UTC) - command.created_at).total_seconds(),
            )
            if command.session_id is None:
                return done
            session = await db.get(SessionRecord, command.session_id, with_for_update=True)
            changed = session is not None and self._drive(
                session, command.action, status, error, result or {}
            )
        if changed and session is not None:
            await self._announce(session)
        return done

    @staticmethod
    def _drive(
        session: SessionRecord, action: str, status: str, error: str, result: dict[str, Any]
    ) -> bool:
        if status == "ack":
            if action == "start_session" and session.state == "pending":
                set_state(session, "starting", reason="agent is starting the session")
                return True
            return False
        ok_state, fail_state = _OUTCOME[action]
        target = ok_state if status == "completed" else fail_state
        reason = "" if status == "completed" else f"{action} failed: {error}"[:2000]
        if status == "completed" and action in ("start_session", "wake_session"):
            session.vnc_host, session.vnc_port = result.get("vncHost"), result.get("vncPort")
        if session.state == target or not can_transition(session.state, target):
            return False
        set_state(session, target, reason=reason)
        return True

    async def observed(
        self,
        *,
        agent_id: str,
        epoch: int,
        key_hash: str,
        session_id: str,
        state: str,
        detail: str,
        vnc: tuple[str | None, int | None],
        adopted: bool = False,
    ) -> str | None:
        """Reconcile a session with what the platform reports. Returns "stop" when the agent
        holds a session the control plane no longer wants (an orphan). A session assigned to
        another agent is refused (PermissionDenied `foreign_session`): it is neither changed
        nor stopped, since a stop would be that other agent's session's. An `adopted` session
        (from before installation ids) this installation never had is left alone: on an
        engine two old installations shared under one agent id, it is the other's."""
        async with self._sessions.begin() as db:
            if not await self._reporter(db, agent_id=agent_id, epoch=epoch, key_hash=key_hash):
                return None
            session = await db.get(SessionRecord, session_id, with_for_update=True)
            if session is not None and session.agent_id != agent_id:
                raise PermissionDenied(
                    f"session {session_id} is assigned to agent {session.agent_id}",
                    code="foreign_session",
                )
            if session is None and adopted:
                log.warning(
                    "agent %s reports session %s, which this installation never had; it has no"
                    " installation label (made before installation ids), so it may be another"
                    " installation's on a shared Docker engine: left alone",
                    agent_id,
                    session_id,
                )
                return None
            if session is None or session.state == "terminated":
                return "stop" if state in ("running", "hibernated") else None
            target, from_states = _OBSERVED.get(state, (None, ()))
            if target is None or session.state not in from_states or session.state == target:
                return None
            if state == "running":
                session.vnc_host, session.vnc_port = vnc
            set_state(session, target, reason=detail or f"agent observed {state}")
        await self._announce(session)
        return None
