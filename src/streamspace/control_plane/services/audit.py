"""The audit trail: the one writer for actions taken outside another use case's transaction
(logins, password changes, lockouts cleared: one row, in a transaction of its own), and its
reading side: filtered pages newest first with a cursor, every matching event for an export,
and the retention purge. Events are append-only: nothing here changes or deletes one, except
the purge of events older than AUDIT_RETENTION_DAYS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import AuditEventRecord
from streamspace.errors import ValidationFailed

EXPORT_BATCH = 500


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


@dataclass(frozen=True)
class AuditFilter:
    """Which events to read. `org_id` None reads every org's and the platform's own events
    (a platform admin's view); otherwise just that org's. `action` matches exactly, or as a
    prefix when it ends in `*` (`auth.*`)."""

    org_id: str | None
    action: str = ""
    actor: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> Select[AuditEventRecord]:
        q = select(AuditEventRecord)
        if self.org_id is not None:
            q = q.where(AuditEventRecord.org_id == self.org_id)
        if self.action.endswith("*"):
            q = q.where(AuditEventRecord.action.startswith(self.action[:-1], autoescape=True))
        elif self.action:
            q = q.where(AuditEventRecord.action == self.action)
        if self.actor:
            q = q.where(AuditEventRecord.actor == self.actor)
        if self.target:
            q = q.where(AuditEventRecord.target == self.target)
        if self.since is not None:
            q = q.where(AuditEventRecord.created_at >= self.since)
        if self.until is not None:
            q = q.where(AuditEventRecord.created_at < self.until)
        return q


def parse_cursor(cursor: str) -> int | None:
    """A page's cursor is the id of the last event it held; the next page starts below it."""
    if not cursor:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise ValidationFailed(
            f"invalid cursor {cursor[:40]!r}: pass the next_cursor of the page before",
            code="invalid_cursor",
        )
    return int(cursor)


async def page(
    db: AsyncSession, *, where: AuditFilter, cursor: str = "", limit: int = 50
) -> tuple[list[AuditEventRecord], str | None]:
    """Up to `limit` events newest first, below the cursor; and the next page's cursor, None
    when this page is the last."""
    q = where.query()
    if (before := parse_cursor(cursor)) is not None:
        q = q.where(AuditEventRecord.id < before)
    rows = list((await db.scalars(q.order_by(AuditEventRecord.id.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].id) if more and rows else None)


async def every(
    sessions: async_sessionmaker[AsyncSession], *, where: AuditFilter
) -> AsyncIterator[AuditEventRecord]:
    """Every matching event, oldest first, read in batches (each in its own short
    transaction), so an export of millions of events holds neither memory nor a snapshot."""
    after = 0
    while True:
        async with sessions() as db:
            q = where.query().where(AuditEventRecord.id > after)
            batch = list(
                (await db.scalars(q.order_by(AuditEventRecord.id).limit(EXPORT_BATCH))).all()
            )
        for event in batch:
            yield event
        if len(batch) < EXPORT_BATCH:
            return
        after = batch[-1].id


async def purge(sessions: async_sessionmaker[AsyncSession], *, before: datetime) -> int:
    """Delete the events written before `before` (the retention); how many went."""
    async with sessions.begin() as db:
        result = await db.execute(
            delete(AuditEventRecord).where(AuditEventRecord.created_at < before)
        )
    return int(getattr(result, "rowcount", 0) or 0)
