"""Cluster-wide singleton leases in the database, so N replicas do a loop's work once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import LeaseRecord


async def try_lease(
    sessions: async_sessionmaker[AsyncSession], *, name: str, holder: str, ttl: float
) -> bool:
    """Take or renew lease `name` for `holder`; False while another holder's lease is live."""
    now = datetime.now(UTC)
    try:
        async with sessions.begin() as db:
            row = await db.get(LeaseRecord, name, with_for_update=True)
            if row is None:
                db.add(
                    LeaseRecord(name=name, holder=holder, expires_at=now + timedelta(seconds=ttl))
                )
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            row.holder, row.expires_at = holder, now + timedelta(seconds=ttl)
            return True
    except IntegrityError:  # another replica inserted it first
        return False


async def lease_holder(sessions: async_sessionmaker[AsyncSession], *, name: str) -> str | None:
    async with sessions() as db:
        row = await db.get(LeaseRecord, name)
        return row.holder if row is not None and row.expires_at > datetime.now(UTC) else None
