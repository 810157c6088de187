"""Kubernetes backend: a `coordination.k8s.io/v1` Lease named `streamspace-agent-{agentId}`.

`holderIdentity` names the leader (the guide's `kubectl get lease ... -o
jsonpath='{.spec.holderIdentity}'`). Every write is a replace at the resourceVersion just read,
so the API server arbitrates: a stale write is 409 Conflict, meaning someone else got there
first. Expiry is judged as client-go does, on this process's own clock from when it last saw
the record change, so candidates need no synchronised clocks. The fencing epoch is
`leaseTransitions` on top of a base fixed when the Lease is created (see `EPOCH_BASE`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from streamspace.errors import Unavailable
from streamspace.kubeconn import KubeConnection
from streamspace.leader.base import LeaderElector, epoch_seed

# leaseTransitions is an int32 that restarts at 0 when the Lease is re-created; the base,
# unix microseconds at creation, keeps epochs above every earlier one (see base.epoch_seed).
EPOCH_BASE = "streamspace.io/epoch-base"


def lease_name(agent_id: str) -> str:
    """The Lease the guide tells operators to get."""
    return f"streamspace-agent-{agent_id}"


def micro_time(when: float) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class KubernetesLeaseElector(LeaderElector):
    """Leadership = the Lease names us and we renewed it within its duration."""

    def __init__(
        self,
        *,
        agent_id: str,
        identity: str,
        lease_duration: float,
        namespace: str | None = None,
        kubeconfig: Path | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(agent_id=agent_id, identity=identity, lease_duration=lease_duration)
        self.name = lease_name(agent_id)
        self._kube = KubeConnection(namespace=namespace, kubeconfig=kubeconfig)
        self._monotonic, self._wall = monotonic, wall
        self._held: int | None = None  # leaseTransitions of our tenure
        self._observed: tuple[str, str, int] | None = None  # holder, renewTime, transitions
        self._observed_at = 0.0

    async def _leases(self) -> tuple[client.CoordinationV1Api, str]:
        api, namespace = await self._kube.open()
        return client.CoordinationV1Api(api), namespace

    # -- the LeaderElector contract ----------------------------------------------------------

    async def try_acquire(self) -> int | None:
        lease = await self._read()
        if lease is None:
            return await self._create()
        spec = lease.get("spec") or {}
        if self._is_mine(spec):
            return self._epoch(lease) if await self.renew() else None
        if spec.get("holderIdentity") and not self._expired(spec):
            return None
        transitions = int(spec.get("leaseTransitions") or 0) + 1
        taken = await self._write(lease, self._spec(transitions=transitions, acquired=True))
        if taken is None:
            return None
        self._held = transitions
        return self._epoch(taken)

    async def renew(self) -> bool:
        if self._held is None:
            return False
        lease = await self._read()
        if lease is None or not self._is_mine(lease.get("spec") or {}):
            self._held = None
            return False
        spec = {**lease["spec"], "renewTime": micro_time(self._wall())}
        if await self._write(lease, spec) is None:
            # Someone wrote the Lease between our read and write: only a new holder does that.
            self._held = None
            return False
        return True

    async def release(self) -> None:
        if self._held is None:
            return
        held, self._held = self._held, None
        lease = await self._read()
        spec = (lease or {}).get("spec") or {}
        if lease is None or spec.get("holderIdentity") != self.identity:
            return
        if int(spec.get("leaseTransitions") or 0) != held:
            return
        # client-go's release: no holder, a one-second lease, transitions kept for the next.
        released = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1}
        released["renewTime"] = micro_time(self._wall())
        await self._write(lease, released)

    async def current_holder(self) -> str | None:
        lease = await self._read()
        spec = (lease or {}).get("spec") or {}
        holder = spec.get("holderIdentity") or None
        renewed = parse_time(spec.get("renewTime"))
        duration = float(spec.get("leaseDurationSeconds") or 0)
        if holder is None or renewed is None or renewed + duration <= self._wall():
            return None
        return str(holder)

    async def close(self) -> None:
        await self._kube.close()

    # -- the Lease ---------------------------------------------------------------------------

    def _is_mine(self, spec: dict[str, Any]) -> bool:
        return (
            self._held is not None
            and spec.get("holderIdentity") == self.identity
            and int(spec.get("leaseTransitions") or 0) == self._held
        )

    def _expired(self, spec: dict[str, Any]) -> bool:
        """True once the record has not changed for its lease duration, on our clock."""
        seen = (
            str(spec.get("holderIdentity") or ""),
            str(spec.get("renewTime") or ""),
            int(spec.get("leaseTransitions") or 0),
        )
        now = self._monotonic()
        if seen != self._observed:
            self._observed, self._observed_at = seen, now
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return now - self._observed_at >= duration

    def _spec(self, *, transitions: int, acquired: bool) -> dict[str, Any]:
        now = micro_time(self._wall())
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "leaseTransitions": transitions,
            "renewTime": now,
        }
        if acquired:
            spec["acquireTime"] = now
        return spec

    def _epoch(self, lease: dict[str, Any]) -> int:
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        try:
            base = int(annotations.get(EPOCH_BASE, "0"))
        except ValueError:
            base = 0
        return base + int((lease.get("spec") or {}).get("leaseTransitions") or 0)

    async def _create(self) -> int | None:
        api, namespace = await self._leases()
        body: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "labels": {
                    "app.kubernetes.io/part-of": "streamspace",
                    "streamspace.io/agent": self.agent_id,
                },
                "annotations": {EPOCH_BASE: str(epoch_seed())},
            },
            "spec": self._spec(transitions=0, acquired=True),
        }
        try:
            created = await api.create_namespaced_lease(namespace, body)
        except ApiException as exc:
            if exc.status == 409:  # another candidate created it first
                return None
            raise _unavailable("creating", self.name, exc) from exc
        self._held = 0
        return self._epoch(self._kube.plain(created))

    async def _read(self) -> dict[str, Any] | None:
        api, namespace = await self._leases()
        try:
            lease = await api.read_namespaced_lease(self.name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _unavailable("reading", self.name, exc) from exc
        return self._kube.plain(lease)

    async def _write(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
        """Replace the Lease at the version we read; None when someone wrote it since."""
        api, namespace = await self._leases()
        body: Any = {**lease, "spec": spec}
        try:
            written = await api.replace_namespaced_lease(self.name, namespace, body)
        except ApiException as exc:
            if exc.status in (404, 409):
                return None
            raise _unavailable("updating", self.name, exc) from exc
        return self._kube.plain(written)


def _unavailable(action: str, name: str, exc: ApiException) -> Unavailable:
    return Unavailable(f"kubernetes: {action} Lease {name} failed: {exc.status} {exc.reason}")
