"""Live events for UI sockets on every replica: published on the hub backend's events channel,
fanned out locally to the sockets allowed to see them (owner; admins of the org)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from streamspace.agent_hub.base import EVENTS_CHANNEL, Bus
from streamspace.control_plane.auth.principal import Principal
from streamspace.errors import Unavailable

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Listener:
    principal: Principal
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(256))


class EventHub:
    def __init__(self, *, bus: Bus) -> None:
        self._bus = bus
        self._listeners: set[Listener] = set()

    def listen(self, principal: Principal) -> Listener:
        listener = Listener(principal)
        self._listeners.add(listener)
        return listener

    def forget(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    async def publish(
        self, *, kind: str, org_id: str | None, user_id: str | None, data: dict[str, Any]
    ) -> None:
        event = {"kind": kind, "org_id": org_id, "user_id": user_id, "data": data}
        raw = json.dumps(event, default=str).encode()
        if self._bus.multi_pod:
            try:
                await self._bus.publish(channel=EVENTS_CHANNEL, data=raw)
                return
            except Unavailable:
                log.warning("events: Redis unavailable, delivering %s event locally only", kind)
        self.deliver(event)

    async def on_message(self, data: bytes) -> None:
        self.deliver(json.loads(data))

    def deliver(self, event: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            p = listener.principal
            if event.get("org_id") not in (None, p.org_id):
                continue
            if not (p.is_admin or event.get("user_id") == p.user_id):
                continue
            if listener.queue.full():  # a stalled socket loses old events, never blocks others
                listener.queue.get_nowait()
            listener.queue.put_nowait({"kind": event["kind"], "data": event["data"]})
