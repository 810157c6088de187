"""One agent's WebSocket on this replica: its epoch, its send queue and writer, its streams."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from streamspace.control_plane.streaming.streams import StreamTable
from streamspace.protocol import close_codes

SEND_QUEUE = 4096


class Socket(Protocol):
    async def send_text(self, data: str) -> None: ...
    async def send_bytes(self, data: bytes) -> None: ...
    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass(eq=False, kw_only=True)
class AgentConnection:
    agent_id: str
    epoch: int
    socket: Socket
    # the hash of the key it authenticated with: an admin's reject or key rotation closes
    # the connections made with that key, and reports carrying it are no longer applied
    key_hash: str = ""
    platform: str = ""
    region: str = ""
    conn_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    last_seen: float = field(default_factory=time.monotonic)
    closed: bool = False
    # closed by this replica's shutdown (1012/1001): the agent is reconnecting elsewhere now
    handed_over: bool = False
    # closed because an admin rejected the agent or rotated its key: it is not coming back
    revoked: bool = False
    # how the socket ended: the agent's close code, this replica's own, or None (dropped)
    close_code: int | None = None
    streams: StreamTable = field(default_factory=StreamTable)
    queue: asyncio.Queue[str | bytes] = field(default_factory=lambda: asyncio.Queue(SEND_QUEUE))
    # Writes a frame at once if the socket can take it (wsserver's `send_now`), else False.
    direct: Callable[[str | bytes], bool] | None = None
    # messages from the agent a database outage kept from being recorded, and the task that
    # sends the agent its outstanding commands again once the database answers (hub.redeliver)
    unrecorded: int = 0
    redelivery: asyncio.Task[None] | None = None

    def send(self, text: str | bytes) -> bool:
        """Send a frame: written at once while nothing waits before it and the socket takes
        writes (a command or ping leaves in the same turn of the event loop, without a hop
        through the writer task); queued otherwise. A connection that cannot keep up is closed
        (commands are durable)."""
        if self.closed:
            return False
        if self.direct is not None and self.queue.empty() and self.direct(text):
            return True
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            asyncio.get_running_loop().create_task(
                self.close(close_codes.POLICY, "send queue full")
            )
            return False
        return True

    async def run_writer(self) -> None:
        while not self.closed:
            frame = await self.queue.get()
            if isinstance(frame, bytes):
                await self.socket.send_bytes(frame)
            else:
                await self.socket.send_text(frame)

    @property
    def returning(self) -> bool:
        """The agent is expected back at once, so it stays schedulable meanwhile: sent away
        by this replica's shutdown, or an elected agent (epoch > 0) that did not say goodbye
        (1000). Its leader died or stepped down and a standby is taking the lease, or its
        network dropped and it reconnects."""
        if self.revoked:
            return False
        return self.handed_over or (self.epoch > 0 and self.close_code != close_codes.NORMAL)

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self.close_code is None:
            self.close_code = code
        with contextlib.suppress(Exception):
            await self.socket.close(code=code, reason=close_codes.fit_reason(reason))
