"""What services need from the outside world, as small protocols (the hub and event bus
implement them; tests may pass simple ones)."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol


class CommandRouter(Protocol):
    async def ensure_reachable(self, agent_id: str) -> None:
        """Raise Unavailable when commands cannot currently reach this agent."""

    async def dispatch(self, agent_id: str, *, resend_after: float | None = None) -> int:
        """Deliver the agent's outstanding commands now (best effort; the sweeper retries)."""


class KeyRevoker(Protocol):
    async def revoke(self, *, agent_id: str, key_hash: str, code: int, reason: str) -> None:
        """Close the agent's connections made with this key (its hash), on every replica."""


class EventSink(Protocol):
    async def publish(
        self, *, kind: str, org_id: str | None, user_id: str | None, data: dict[str, Any]
    ) -> None:
        """Tell UI sockets on every replica about a change."""


async def announce_agent(events: EventSink | None, data: dict[str, Any]) -> None:
    """Admins' UI sockets on every replica hear that an agent changed. Best effort: a lost
    event only delays the console, which refetches on its own."""
    if events is not None:
        with contextlib.suppress(Exception):
            await events.publish(kind="agent", org_id=None, user_id=None, data=data)
