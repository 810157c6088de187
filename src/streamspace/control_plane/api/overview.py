"""`GET /api/v1/admin/overview`: the guide's four headline figures, cluster-wide over every org
(from the database, so every replica answers the same), and their recent history in time
buckets for the admin console's charts. A platform admin's view: agents are the platform's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select

from streamspace.control_plane.api.deps import Ctx, PlatformAdmin
from streamspace.control_plane.db.records import AgentCommandRecord, AgentRecord, SessionRecord
from streamspace.control_plane.services.states import ACTIVE_STATES

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

FAILED_COMMANDS = ("failed", "timeout")
ENDED_SESSIONS = ("terminated", "failed")


class OverviewPoint(BaseModel):
    t: datetime = Field(description="bucket start (UTC)")
    sessions_active: int = Field(description="sessions in an active state at the bucket's end")
    sessions_started: int
    commands_dispatched: int
    commands_failed: int


class Overview(BaseModel):
    agents_connected: int
    agents_pending: int
    sessions_active: int
    commands_dispatched_total: int
    commands_failed_total: int
    bucket_seconds: int
    series: list[OverviewPoint]


@router.get("/overview", response_model=Overview)
async def overview(
    admin: PlatformAdmin,
    ctx: Ctx,
    minutes: Annotated[int, Query(ge=5, le=24 * 60, description="history window")] = 60,
    buckets: Annotated[int, Query(ge=2, le=240, description="points in the series")] = 30,
) -> Overview:
    now = datetime.now(UTC)
    start = now - timedelta(minutes=minutes)
    width = minutes * 60 / buckets
    edges = [start + timedelta(seconds=width * i) for i in range(buckets + 1)]

    def bucket(at: datetime) -> int | None:
        index = int((at - start).total_seconds() // width)
        return index if 0 <= index < buckets else None

    started = [0] * buckets
    active = [0] * buckets
    dispatched = [0] * buckets
    failed = [0] * buckets
    async with ctx.db() as db:
        pending = await db.scalar(
            select(func.count())
            .select_from(AgentRecord)
            .where(AgentRecord.approval_status == "pending")
        )
        connected = await db.scalar(
            select(func.count()).select_from(AgentRecord).where(AgentRecord.status == "online")
        )
        sessions_now = await db.scalar(
            select(func.count())
            .select_from(SessionRecord)
            .where(SessionRecord.state.in_(ACTIVE_STATES))
        )
        totals = dict(
            (
                await db.execute(
                    select(AgentCommandRecord.status, func.count()).group_by(
                        AgentCommandRecord.status
                    )
                )
            ).all()
        )
        sessions = await db.execute(
            select(
                SessionRecord.created_at,
                SessionRecord.state,
                SessionRecord.state_changed_at,
                SessionRecord.terminated_at,
            ).where(
                SessionRecord.created_at < now,
                or_(
                    SessionRecord.state.not_in(ENDED_SESSIONS),
                    SessionRecord.state_changed_at >= start,
                ),
            )
        )
        for created, state, changed, terminated in sessions:
            if (index := bucket(created)) is not None:
                started[index] += 1
            ended = terminated or (changed if state in ENDED_SESSIONS else None)
            for i, edge in enumerate(edges[1:]):
                if created <= edge and (ended is None or ended > edge):
                    active[i] += 1
        commands = await db.execute(
            select(AgentCommandRecord.created_at, AgentCommandRecord.status).where(
                AgentCommandRecord.created_at >= start
            )
        )
        for created, status in commands:
            if (index := bucket(created)) is not None:
                dispatched[index] += 1
                failed[index] += status in FAILED_COMMANDS
    return Overview(
        agents_connected=connected or 0,
        agents_pending=pending or 0,
        sessions_active=sessions_now or 0,
        commands_dispatched_total=sum(totals.values()),
        commands_failed_total=sum(totals.get(s, 0) for s in FAILED_COMMANDS),
        bucket_seconds=round(width),
        series=[
            OverviewPoint(
                t=edges[i],
                sessions_active=active[i],
                sessions_started=started[i],
                commands_dispatched=dispatched[i],
                commands_failed=failed[i],
            )
            for i in range(buckets)
        ],
    )
