"""Pick the agent for a new session: approved, online, not draining, with free capacity,
matching the requested region/platform, least loaded first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from streamspace.control_plane.db.records import AgentRecord, SessionRecord
from streamspace.control_plane.services.states import LOAD_STATES
from streamspace.errors import Unavailable

NO_AGENTS = "No agents available"


async def agent_loads(db: AsyncSession) -> dict[str, int]:
    rows = await db.execute(
        select(SessionRecord.agent_id, func.count())
        .where(SessionRecord.state.in_(LOAD_STATES), SessionRecord.agent_id.is_not(None))
        .group_by(SessionRecord.agent_id)
    )
    return {str(agent_id): count for agent_id, count in rows.all()}


async def pick_agent(
    db: AsyncSession, *, liveness: float, region: str | None = None, platform: str | None = None
) -> AgentRecord:
    """Return the least-loaded eligible agent, or raise Unavailable('No agents available',
    naming the region when one was asked for)."""
    since = datetime.now(UTC) - timedelta(seconds=liveness)
    query = select(AgentRecord).where(
        AgentRecord.approval_status == "approved",
        AgentRecord.status == "online",
        AgentRecord.draining.is_(False),
        AgentRecord.last_heartbeat >= since,
    )
    if region:
        query = query.where(AgentRecord.region == region)
    if platform:
        query = query.where(AgentRecord.platform == platform)
    candidates = list((await db.scalars(query)).all())
    loads = await agent_loads(db)
    free = [a for a in candidates if loads.get(a.id, 0) < a.max_sessions]
    if not free:
        # The guide's words first (operators grep for them), then which constraint bit.
        where = f" in region {region}" if region else ""
        raise Unavailable(f"{NO_AGENTS}{where}", code="no_agents_available")
    free.sort(key=lambda a: (loads.get(a.id, 0) / max(a.max_sessions, 1), loads.get(a.id, 0), a.id))
    chosen = free[0]
    # Serialise concurrent placements on this agent (PostgreSQL row lock; SQLite serialises writes).
    await db.execute(select(AgentRecord.id).where(AgentRecord.id == chosen.id).with_for_update())
    return chosen
