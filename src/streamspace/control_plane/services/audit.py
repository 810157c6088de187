"""The audit trail's one writer for actions taken outside another use case's transaction
(logins, password changes, lockouts cleared): one row, in a transaction of its own."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import AuditEventRecord


async def record(
    sessions: async_sessionmaker[AsyncSession],
    *,
    org_id: str | None,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    async with sessions.begin() as db:
        db.add(
            AuditEventRecord(
                org_id=org_id, actor=actor, action=action, target=target, detail=detail or {}
            )
        )
