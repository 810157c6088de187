"""Pings in flight on this replica: waiters for an agent's pong, and pings forwarded for another
replica whose pong goes back over the bus. Bookkeeping only; the hub does the I/O."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from streamspace.errors import Unavailable

FORWARDED_LIMIT = 10_000


class PingBook:
    def __init__(self, *, forwarded_limit: int = FORWARDED_LIMIT) -> None:
        self._waiters: dict[str, tuple[str, asyncio.Future[None]]] = {}
        self._forwarded: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._limit = forwarded_limit

    def expect(self, *, ping_id: str, agent_id: str) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[ping_id] = (agent_id, waiter)
        return waiter

    def forget(self, ping_id: str) -> None:
        self._waiters.pop(ping_id, None)

    def settle(self, *, ping_id: str, agent_id: str | None = None, error: str = "") -> bool:
        """Wake the waiter for this ping (only the pinged agent may answer it)."""
        entry = self._waiters.get(ping_id)
        if entry is None or (agent_id is not None and entry[0] != agent_id):
            return False
        waiter = entry[1]
        if not waiter.done():
            if error:
                waiter.set_exception(Unavailable(error, code="agent_offline"))
            else:
                waiter.set_result(None)
        return True

    def forward(self, *, ping_id: str, agent_id: str, origin: str) -> None:
        """Remember which replica asked; the oldest entries go first (their pings timed out)."""
        self._forwarded[ping_id] = (agent_id, origin)
        while len(self._forwarded) > self._limit:
            self._forwarded.popitem(last=False)

    def origin_of(self, *, ping_id: str, agent_id: str) -> str | None:
        entry = self._forwarded.get(ping_id)
        if entry is None or entry[0] != agent_id:
            return None
        del self._forwarded[ping_id]
        return entry[1]
