"""`HubBackend`: the agent->pod registry, replica registry and pub/sub bus of the AgentHub.

Redis keys and channels are the guide's: `agent:{agentId}:pod`, `agent:{agentId}:connected`
(TTL 5 min, refreshed by heartbeats) and `pod:{podName}:commands`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

Handler = Callable[[str, bytes], Awaitable[None]]

AGENT_KEY_TTL = 300
EVENTS_CHANNEL = "streamspace:events"
CONTROL_CHANNEL = "streamspace:control"


def pod_channel(pod_name: str) -> str:
    return f"pod:{pod_name}:commands"


class HubBackend(ABC):
    """Shared AgentHub state. `multi_pod` is False for the memory backend and while Redis is down."""

    name: str

    @property
    @abstractmethod
    def multi_pod(self) -> bool: ...

    @abstractmethod
    async def start(
        self, *, channels: list[str], handler: Handler, on_connected: Callable[[], Awaitable[None]]
    ) -> None:
        """Subscribe `handler` to `channels` (kept across reconnects); `on_connected` runs each
        time the shared backend (re)connects, so the replica can re-claim its agents."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def claim(self, *, agent_id: str, pod_name: str) -> None:
        """Record that this pod holds the agent's connection (TTL AGENT_KEY_TTL)."""

    @abstractmethod
    async def refresh(self, *, agent_id: str, pod_name: str) -> None:
        """Heartbeat: extend the TTL, re-creating the keys if they vanished."""

    async def refresh_many(self, *, agent_ids: list[str], pod_name: str) -> None:
        """`refresh` for a batch of agents (one round trip where the backend allows it)."""
        for agent_id in agent_ids:
            await self.refresh(agent_id=agent_id, pod_name=pod_name)

    @abstractmethod
    async def release(self, *, agent_id: str, pod_name: str) -> bool:
        """Delete the agent's keys only if they still point at `pod_name`."""

    @abstractmethod
    async def lookup(self, *, agent_id: str) -> str | None:
        """Pod holding the agent, None if none; Unavailable if the shared store is down."""

    @abstractmethod
    async def publish(self, *, channel: str, data: bytes) -> int:
        """Publish; return how many replicas received it. Unavailable if the store is down."""

    @abstractmethod
    async def register_replica(self, *, pod_name: str, address: str, ttl: int) -> None:
        """Publish this replica's internal address (peers dial it to relay viewer streams),
        valid for `ttl` seconds unless registered again. Best effort."""

    @abstractmethod
    async def replica_address(self, pod_name: str) -> str | None:
        """A live replica's internal address; None once it stopped registering."""

    async def ping(self) -> bool:
        return True
