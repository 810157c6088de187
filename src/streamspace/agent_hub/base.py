"""The AgentHub's shared state in three small contracts: `AgentRegistry` (agent -> pod),
`Bus` (messages between replicas) and `ReplicaAddresses` (where a replica takes relayed
streams); `HubBackend` is one store that serves all three.

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


class AgentRegistry(ABC):
    """Which replica holds each agent's connection: `agent:{agentId}:pod` and
    `agent:{agentId}:connected`, kept alive by heartbeats."""

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


class Bus(ABC):
    """Messages between replicas: each replica's `pod:{podName}:commands`, the control and the
    events channels. `shared` says whether it can reach other replicas at all (Redis: yes,
    in-process: no); `multi_pod` whether it does right now."""

    shared: bool

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
    async def publish(self, *, channel: str, data: bytes) -> int:
        """Publish; return how many replicas received it. Unavailable if the store is down."""


class ReplicaAddresses(ABC):
    """Where each live replica takes relayed viewer streams (`streamspace:replica:{pod}`)."""

    @abstractmethod
    async def register_replica(self, *, pod_name: str, address: str, ttl: int) -> None:
        """Publish this replica's internal address (peers dial it to relay viewer streams),
        valid for `ttl` seconds unless registered again. Best effort."""

    @abstractmethod
    async def replica_address(self, pod_name: str) -> str | None:
        """A live replica's internal address; None once it stopped registering."""


class HubBackend(AgentRegistry, Bus, ReplicaAddresses):
    """One store serving the three roles (in memory for one replica, Redis for many), and its
    life: the hub's parts each take only the role they use, so any role can be served by
    another store."""

    name: str

    @abstractmethod
    async def close(self) -> None: ...

    async def ping(self) -> bool:
        return True
