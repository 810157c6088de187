"""Swarm backend: the label `streamspace.agent.leader.{agentId}` on a Swarm service.

Every change is a service update at the version just read, so Swarm's raft store arbitrates:
a stale version answers 500 "update out of sequence", meaning another writer got there first.
The label holds holder, epoch and a wall-clock expiry, so candidates need synchronised clocks.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiodocker

from streamspace.errors import ConfigError, Unavailable
from streamspace.leader.base import LeaderElector, epoch_seed

_CONFLICT_RETRIES = 3


def leader_label(agent_id: str) -> str:
    """The label the guide tells operators to inspect."""
    return f"streamspace.agent.leader.{agent_id}"


@dataclass(frozen=True)
class LeaderRecord:
    """What the label says: who leads, with which epoch, until when (unix seconds)."""

    holder: str
    epoch: int
    expires: float

    def to_label(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_label(cls, text: str | None) -> LeaderRecord | None:
        try:
            data = json.loads(text or "")
            return cls(
                holder=str(data["holder"]), epoch=int(data["epoch"]), expires=float(data["expires"])
            )
        except (ValueError, KeyError, TypeError):
            return None

    def held_at(self, now: float) -> bool:
        return bool(self.holder) and self.expires > now


class SwarmLeaderElector(LeaderElector):
    """Leadership = the service label names us and has not expired."""

    def __init__(
        self,
        *,
        agent_id: str,
        identity: str,
        lease_duration: float,
        docker: aiodocker.Docker,
        service: str | None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(agent_id=agent_id, identity=identity, lease_duration=lease_duration)
        self._docker = docker
        self._service = service
        self._wall = wall
        self._label = leader_label(agent_id)
        self._epoch: int | None = None

    async def try_acquire(self) -> int | None:
        service = await self._inspect()
        record = self._record(service)
        now = self._wall()
        if record is not None and record.held_at(now):
            return self._epoch if self._is_mine(record) and await self.renew() else None
        epoch = (record.epoch if record else epoch_seed()) + 1
        new = LeaderRecord(holder=self.identity, epoch=epoch, expires=now + self.lease_duration)
        if not await self._write(service, new):
            return None
        self._epoch = epoch
        return epoch

    async def renew(self) -> bool:
        """Extend our label; False once it names someone else (a later epoch)."""
        for _ in range(_CONFLICT_RETRIES):
            service = await self._inspect()
            record = self._record(service)
            if record is None or not self._is_mine(record):
                self._epoch = None
                return False
            extended = LeaderRecord(
                holder=self.identity, epoch=record.epoch, expires=self._wall() + self.lease_duration
            )
            if await self._write(service, extended):
                return True
        raise Unavailable(f"swarm service {self._service!r} kept changing while renewing")

    async def release(self) -> None:
        for _ in range(_CONFLICT_RETRIES):
            service = await self._inspect()
            record = self._record(service)
            if record is None or not self._is_mine(record):
                break
            # Keep the epoch in the label: the next holder counts on from it.
            if await self._write(service, LeaderRecord(holder="", epoch=record.epoch, expires=0)):
                break
        self._epoch = None

    async def current_holder(self) -> str | None:
        record = self._record(await self._inspect())
        return record.holder if record is not None and record.held_at(self._wall()) else None

    async def close(self) -> None:
        await self._docker.close()

    def _is_mine(self, record: LeaderRecord) -> bool:
        return record.holder == self.identity and record.epoch == self._epoch

    def _record(self, service: Mapping[str, Any]) -> LeaderRecord | None:
        labels = service["Spec"].get("Labels") or {}
        return LeaderRecord.from_label(labels.get(self._label))

    async def _inspect(self) -> Mapping[str, Any]:
        name = self._service or await self._own_service()
        try:
            return await self._docker.services.inspect(name)
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                raise ConfigError(f"swarm service {name!r} not found (SWARM_SERVICE_NAME)") from exc
            raise

    async def _write(self, service: Mapping[str, Any], record: LeaderRecord) -> bool:
        """Update the label at the version we read; False when someone updated it since."""
        spec = dict(service["Spec"])
        spec["Labels"] = {**(spec.get("Labels") or {}), self._label: record.to_label()}
        try:
            await self._docker._query_json(
                f"services/{service['ID']}/update",
                method="POST",
                params={"version": service["Version"]["Index"]},
                data=json.dumps(spec),
            )
        except aiodocker.DockerError as exc:
            if "update out of sequence" in str(exc.message):
                return False
            raise
        return True

    async def _own_service(self) -> str:
        """The service of the task we run in (its container id is our hostname)."""
        try:
            container = await self._docker.containers.get(socket.gethostname())
        except aiodocker.DockerError as exc:
            raise ConfigError("not running in a swarm task: set SWARM_SERVICE_NAME") from exc
        labels = container["Config"].get("Labels") or {}
        name = labels.get("com.docker.swarm.service.name")
        if not name:
            raise ConfigError("not running in a swarm task: set SWARM_SERVICE_NAME")
        self._service = str(name)
        return self._service
