"""Live control-plane replicas. Each one, every BEAT seconds, registers its internal address in
the hub backend (Redis: `streamspace:replica:{pod}` with a TTL of 3 beats), where a peer looks
it up to relay a viewer stream to it, and writes a heartbeat row (pod name, internal URL,
version) to the database, from which admins see the fleet (`GET /api/v1/pods`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace import __version__
from streamspace.agent_hub.base import ReplicaAddresses
from streamspace.control_plane.db.records import ReplicaRecord

log = logging.getLogger(__name__)
BEAT = 10.0
FORGET_AFTER = 3600.0


@dataclass(frozen=True, kw_only=True)
class Replica:
    pod_name: str
    internal_url: str
    version: str
    alive: bool


class ReplicaDirectory:
    def __init__(
        self,
        *,
        db: async_sessionmaker[AsyncSession],
        addresses: ReplicaAddresses,
        pod: str,
        internal_url: str,
    ) -> None:
        self._db, self._addresses, self._pod, self._url = db, addresses, pod, internal_url

    async def beat(self) -> None:
        await self._addresses.register_replica(
            pod_name=self._pod, address=self._url, ttl=int(BEAT * 3)
        )
        async with self._db.begin() as db:
            row = await db.get(ReplicaRecord, self._pod)
            if row is None:
                row = ReplicaRecord(pod_name=self._pod, started_at=datetime.now(UTC))
                db.add(row)
            row.internal_url, row.version, row.last_seen = self._url, __version__, datetime.now(UTC)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(BEAT)
            try:
                await self.beat()
            except Exception:
                log.exception("could not record this replica's heartbeat")

    async def known(self) -> dict[str, Replica]:
        """Replicas seen within the hour, by pod name; `alive` if seen within 3 beats."""
        now = datetime.now(UTC)
        async with self._db() as db:
            rows = (await db.scalars(select(ReplicaRecord))).all()
        ages = {r.pod_name: (now - r.last_seen).total_seconds() for r in rows}
        return {
            r.pod_name: Replica(
                pod_name=r.pod_name,
                internal_url=r.internal_url,
                version=r.version,
                alive=ages[r.pod_name] < BEAT * 3,
            )
            for r in rows
            if ages[r.pod_name] < FORGET_AFTER
        }
