"""Which of this replica's agent connections use a key an admin has revoked since (rejected
the agent or rotated its key), as the database says: the fallback for a `revoke` announcement
that never reached this replica (Redis down at that moment)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import AgentRecord
from streamspace.control_plane.hub.connection import AgentConnection
from streamspace.control_plane.services.agents import REJECTED, ROTATED
from streamspace.protocol import close_codes

BATCH = 500  # agent ids per query (well under SQLite's bound on parameters)


async def revoked_keys(
    *, db: async_sessionmaker[AsyncSession], conns: Iterable[AgentConnection]
) -> list[tuple[AgentConnection, int, str]]:
    """The open connections to close, each with its close code and reason."""
    open_ = [c for c in conns if not c.closed]
    found: list[tuple[AgentConnection, int, str]] = []
    for start in range(0, len(open_), BATCH):
        batch = open_[start : start + BATCH]
        async with db() as session:
            rows = await session.execute(
                select(AgentRecord.id, AgentRecord.api_key_hash, AgentRecord.approval_status).where(
                    AgentRecord.id.in_([c.agent_id for c in batch])
                )
            )
            current = {agent_id: (key, status) for agent_id, key, status in rows.all()}
        for conn in batch:
            key, status = current.get(conn.agent_id, (None, "rejected"))
            if status != "approved":
                found.append((conn, close_codes.FORBIDDEN, REJECTED))
            elif key != conn.key_hash:
                found.append((conn, close_codes.UNAUTHENTICATED, ROTATED))
    return found
