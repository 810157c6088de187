"""Live events for UI sockets on every replica: published on the hub backend's events channel,
fanned out locally to the sockets allowed to see them (owner; admins of the org). Ended logins
travel the same way: each replica closes the sockets opened under them (events, viewers)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from streamspace.agent_hub.base import EVENTS_CHANNEL, Bus
from streamspace.control_plane.auth.principal import Principal
from streamspace.errors import Unavailable
from streamspace.protocol import close_codes

log = logging.getLogger(__name__)
REVOKED = "login_ended"  # not a UI event: tells each replica to close the login's sockets


@dataclass(eq=False)
class Listener:
    principal: Principal
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(256))


@dataclass(eq=False)
class Held:
    """A socket opened under a login: `close(code, reason)` ends it when that login ends, or
    asks its client to reconnect when what the login may see changed."""

    principal: Principal
    close: Callable[[int, str], None]


class EventHub:
    def __init__(self, *, bus: Bus) -> None:
        self._bus = bus
        self._listeners: set[Listener] = set()
        self._held: set[Held] = set()

    def hold(self, principal: Principal, close: Callable[[int, str], None]) -> Held:
        held = Held(principal, close)
        self._held.add(held)
        return held

    def release(self, held: Held) -> None:
        self._held.discard(held)

    async def end_logins(
        self, *, user_id: str, login_id: str | None, reason: str, keep: str | None = None
    ) -> None:
        """Close, on every replica, the sockets opened under one login of the user (or under
        any of them but `keep` when `login_id` is None)."""
        data = {"user_id": user_id, "login_id": login_id, "reason": reason, "keep": keep}
        await self.publish(kind=REVOKED, org_id=None, user_id=user_id, data=data)

    async def refresh_user(self, *, user_id: str, reason: str) -> None:
        """Ask, on every replica, the user's sockets to reconnect (1012): what they may see
        changed (their role), and a socket keeps what it was opened with."""
        data = {"user_id": user_id, "login_id": None, "reason": reason, "refresh": True}
        await self.publish(kind=REVOKED, org_id=None, user_id=user_id, data=data)

    async def recheck_logins(
        self, *, ended: Callable[[str], Awaitable[str | None]], interval: float
    ) -> None:
        """Every `interval`, ask `ended(login_id)` about each login holding sockets here and
        close those that ended: the fallback for a `login_ended` event this replica never
        heard (Redis down when it was published), a login that ended while its socket was
        being opened, and logins that simply expired."""
        while True:
            await asyncio.sleep(interval)
            for login_id in {held.principal.token_id for held in self._held}:
                try:
                    reason = await ended(login_id)
                except Exception as exc:  # the database is out: next time
                    log.warning("events: could not check login %.8s… (%s)", login_id, exc)
                    break
                if reason is not None:
                    self._close_held({"login_id": login_id, "reason": reason})

    def _close_held(self, data: dict[str, Any]) -> None:
        user_id, login_id, keep = data.get("user_id"), data.get("login_id"), data.get("keep")
        reason = str(data.get("reason") or "your login ended")
        if data.get("refresh"):
            code, reason = close_codes.SERVICE_RESTART, f"{reason}; reconnect"
        else:
            code, reason = close_codes.UNAUTHENTICATED, f"login ended: {reason}"
        for held in list(self._held):
            p = held.principal
            if p.token_id == keep:
                continue
            if (user_id is None or p.user_id == user_id) and login_id in (None, p.token_id):
                self._held.discard(held)
                held.close(code, reason)

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
        if event.get("kind") == REVOKED:
            self._close_held(event.get("data") or {})
            return
        for listener in list(self._listeners):
            p = listener.principal
            if event.get("org_id") not in (None, p.org_id):
                continue
            if not (p.is_admin or event.get("user_id") == p.user_id):
                continue
            if listener.queue.full():  # a stalled socket loses old events, never blocks others
                listener.queue.get_nowait()
            listener.queue.put_nowait({"kind": event["kind"], "data": event["data"]})
