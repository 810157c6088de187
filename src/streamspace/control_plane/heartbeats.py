"""Agent heartbeats, applied in batches: the latest report per agent is kept in memory and
flushed every `interval` as one UPDATE (executemany) and one Redis pipeline for the agents' TTL
keys, instead of a transaction and a Redis round trip per heartbeat."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.agent_hub.base import HubBackend
from streamspace.control_plane.db.records import AgentRecord

log = logging.getLogger(__name__)
_table = cast(Table, AgentRecord.__table__)
_agents = _table.c
_MATCH = (_agents.id == bindparam("b_id")) & (_agents.epoch == bindparam("b_epoch"))
_BASE = {
    "last_heartbeat": bindparam("b_at"),
    "status": "online",
    "active_sessions": bindparam("b_active"),
    "draining": bindparam("b_draining"),
}
_PLAIN = update(_table).where(_MATCH).values(**_BASE)
_WITH_CAPACITY = (
    update(_table)
    .where(_MATCH)
    .values(**_BASE, capacity=bindparam("b_capacity"), max_sessions=bindparam("b_max"))
)


@dataclass(frozen=True, kw_only=True)
class HeartbeatReport:
    agent_id: str
    epoch: int
    active: int
    draining: bool
    capacity: dict[str, Any] | None
    at: datetime


class HeartbeatWriter:
    def __init__(
        self,
        *,
        db: async_sessionmaker[AsyncSession],
        backend: HubBackend,
        pod: str,
        interval: float,
    ) -> None:
        self._db, self._backend, self._pod = db, backend, pod
        self.interval = interval
        self._pending: dict[str, HeartbeatReport] = {}
        self._lock = asyncio.Lock()

    def record(
        self,
        *,
        agent_id: str,
        epoch: int,
        active: int,
        draining: bool,
        capacity: dict[str, Any] | None,
    ) -> None:
        """Keep the latest report; written at the next flush (a stale epoch changes nothing)."""
        self._pending[agent_id] = HeartbeatReport(
            agent_id=agent_id,
            epoch=epoch,
            active=active,
            draining=draining,
            capacity=capacity,
            at=datetime.now(UTC),
        )

    async def forget(self, agent_id: str) -> None:
        """Drop the agent's pending report and wait out a flush in progress, so a disconnect
        written after this is never overwritten by an older heartbeat."""
        async with self._lock:
            self._pending.pop(agent_id, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("could not record agent heartbeats; retrying")

    async def flush(self) -> int:
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                await self._write(list(batch.values()))
            except Exception:
                for agent_id, report in batch.items():  # newer reports win
                    self._pending.setdefault(agent_id, report)
                raise
        await self._backend.refresh_many(agent_ids=list(batch), pod_name=self._pod)
        return len(batch)

    async def _write(self, reports: list[HeartbeatReport]) -> None:
        plain = [_row(r) for r in reports if not r.capacity]
        sized = [_row(r) for r in reports if r.capacity]
        async with self._db.begin() as db:
            conn = await db.connection()
            if plain:
                await conn.execute(_PLAIN, plain)
            if sized:
                await conn.execute(_WITH_CAPACITY, sized)


def _row(report: HeartbeatReport) -> dict[str, Any]:
    row: dict[str, Any] = {
        "b_id": report.agent_id,
        "b_epoch": report.epoch,
        "b_at": report.at,
        "b_active": report.active,
        "b_draining": report.draining,
    }
    if report.capacity:
        row["b_capacity"] = report.capacity
        row["b_max"] = int(report.capacity.get("maxSessions", 10))
    return row
