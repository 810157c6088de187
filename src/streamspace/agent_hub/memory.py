"""In-process HubBackend for the single-pod (embedded) mode: no Redis, one replica."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from streamspace.agent_hub.base import Handler, HubBackend

log = logging.getLogger(__name__)


class MemoryHubBackend(HubBackend):
    name = "memory"
    shared = False

    def __init__(self) -> None:
        self._pods: dict[str, str] = {}
        self._channels: set[str] = set()
        self._handler: Handler | None = None
        self._replicas: dict[str, tuple[str, float]] = {}  # pod -> (address, valid until)

    @property
    def multi_pod(self) -> bool:
        return False

    async def start(
        self, *, channels: list[str], handler: Handler, on_connected: Callable[[], Awaitable[None]]
    ) -> None:
        self._channels = set(channels)
        self._handler = handler
        log.info("AgentHub running in single-pod mode (in-memory)")

    async def close(self) -> None:
        self._handler = None

    async def claim(self, *, agent_id: str, pod_name: str) -> None:
        self._pods[agent_id] = pod_name

    async def refresh(self, *, agent_id: str, pod_name: str) -> None:
        self._pods[agent_id] = pod_name

    async def release(self, *, agent_id: str, pod_name: str) -> bool:
        if self._pods.get(agent_id) == pod_name:
            del self._pods[agent_id]
            return True
        return False

    async def lookup(self, *, agent_id: str) -> str | None:
        return self._pods.get(agent_id)

    async def publish(self, *, channel: str, data: bytes) -> int:
        if self._handler is None or channel not in self._channels:
            return 0
        await self._handler(channel, data)
        return 1

    async def register_replica(self, *, pod_name: str, address: str, ttl: int) -> None:
        self._replicas[pod_name] = (address, time.monotonic() + ttl)

    async def replica_address(self, pod_name: str) -> str | None:
        address, until = self._replicas.get(pod_name, ("", 0.0))
        return address if until > time.monotonic() else None
