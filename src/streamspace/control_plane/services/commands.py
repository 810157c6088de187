"""Durable agent commands: rows created inside the caller's transaction, then delivered by the
hub. Status: pending -> sent -> ack -> completed | failed | timeout. Results are applied once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from streamspace.control_plane.db.records import AgentCommandRecord, SessionRecord, TemplateRecord
from streamspace.errors import PermissionDenied

OUTSTANDING = ("pending", "sent", "ack")
FINAL = ("completed", "failed", "timeout")


def session_spec(
    *, session: SessionRecord, template: TemplateRecord, username: str
) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "user": username,
        "template": template.name,
        "image": template.image,
        "vnc_port": template.vnc_port,
        "cpu_limit": template.cpu_limit,
        "memory_limit_mb": template.memory_limit_mb,
        "env": dict(template.env or {}),
        "persistent_home": template.persistent_home,
        "pull": template.pull,
        "egress": template.egress,
    }


def add_command(
    db: AsyncSession,
    *,
    agent_id: str,
    action: str,
    session_id: str | None,
    spec: dict[str, Any] | None = None,
) -> AgentCommandRecord:
    command = AgentCommandRecord(
        agent_id=agent_id,
        action=action,
        session_id=session_id,
        payload={"spec": spec or {}},
        status="pending",
    )
    db.add(command)
    return command


def wire_payload(command: AgentCommandRecord) -> dict[str, Any]:
    spec = dict((command.payload or {}).get("spec", {}))
    return {
        "commandId": command.id,
        "action": command.action,
        "sessionId": command.session_id or spec.get("session_id"),
        "spec": spec,
    }


async def outstanding_for(
    db: AsyncSession,
    *,
    agent_id: str,
    resend_after: float | None = None,
    in_doubt: bool = False,
) -> list[AgentCommandRecord]:
    """Commands still owed to an agent; with `resend_after`, only those not sent recently,
    and with `in_doubt` also those acknowledged but without an outcome yet (on a reconnect:
    the outcome may have died with the old connection or the old leader)."""
    query = select(AgentCommandRecord).where(
        AgentCommandRecord.agent_id == agent_id, AgentCommandRecord.status.in_(OUTSTANDING)
    )
    if resend_after is not None:
        cutoff = datetime.now(UTC) - timedelta(seconds=resend_after)
        due = [
            AgentCommandRecord.status == "pending",
            (AgentCommandRecord.status == "sent") & (AgentCommandRecord.sent_at < cutoff),
        ]
        if in_doubt:
            due.append(AgentCommandRecord.status == "ack")
        query = query.where(or_(*due))
    return list((await db.scalars(query.order_by(AgentCommandRecord.created_at))).all())


async def mark_sent(db: AsyncSession, *, command_ids: list[str]) -> None:
    if not command_ids:
        return
    await db.execute(
        update(AgentCommandRecord)
        .where(
            AgentCommandRecord.id.in_(command_ids),
            AgentCommandRecord.status.in_(("pending", "sent")),
        )
        .values(status="sent", sent_at=datetime.now(UTC), attempts=AgentCommandRecord.attempts + 1)
    )


async def record_outcome(
    db: AsyncSession,
    *,
    agent_id: str,
    command_id: str,
    status: str,
    error: str = "",
    result: dict[str, Any] | None = None,
) -> AgentCommandRecord | None:
    """Move a command forward; None when unknown or already final (a duplicate delivery), so
    each result is applied at most once. PermissionDenied (`foreign_command`) when the command
    is another agent's: a command id belongs to the one agent it was sent to."""
    command = await db.get(AgentCommandRecord, command_id, with_for_update=True)
    if command is None:
        return None
    if command.agent_id != agent_id:
        raise PermissionDenied(
            f"command {command_id} belongs to agent {command.agent_id}", code="foreign_command"
        )
    if command.status in FINAL:
        return None
    if status == "ack" and command.status == "ack":
        return None
    now = datetime.now(UTC)
    command.status = status
    if status == "ack":
        command.acked_at = now
    else:
        command.completed_at = now
        command.error = error
        command.result = result or {}
    return command


async def expired_commands(db: AsyncSession, *, deadline: float) -> list[AgentCommandRecord]:
    cutoff = datetime.now(UTC) - timedelta(seconds=deadline)
    return list(
        (
            await db.scalars(
                select(AgentCommandRecord)
                .where(
                    AgentCommandRecord.status.in_(OUTSTANDING),
                    AgentCommandRecord.created_at < cutoff,
                )
                .with_for_update()
            )
        ).all()
    )


async def agents_with_due_commands(db: AsyncSession, *, resend_after: float) -> list[str]:
    cutoff = datetime.now(UTC) - timedelta(seconds=resend_after)
    rows = await db.scalars(
        select(AgentCommandRecord.agent_id)
        .where(
            or_(
                AgentCommandRecord.status == "pending",
                (AgentCommandRecord.status == "sent") & (AgentCommandRecord.sent_at < cutoff),
            )
        )
        .distinct()
    )
    return list(rows.all())
