"""What the two hand-driven sockets of the VNC data path share (the agent's connection to a
session's VNC server, agents/streams.py, and the peer hop's client, control_plane/streaming/peer.py):
reads land in buffers the protocol hands out (asyncio.BufferedProtocol), reading pauses while
more than `read_ahead` received bytes wait for their consumer, and writers wait while the
transport's buffer is full."""

from __future__ import annotations

import asyncio
from typing import cast


class BufferedLink(asyncio.BufferedProtocol):
    def __init__(self, *, read_ahead: int) -> None:
        self._read_ahead = read_ahead
        self._transport: asyncio.Transport | None = None
        self._unconsumed = 0
        self._paused = False
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()  # nothing will drain now; let writers find out

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def received(self, nbytes: int) -> None:
        """Count bytes handed to the consumer; pause reading past the read-ahead."""
        self._unconsumed += nbytes
        if self._unconsumed >= self._read_ahead and not self._paused and self._transport:
            self._paused = True
            self._transport.pause_reading()

    def consumed(self, nbytes: int) -> None:
        """The consumer is done with `nbytes`; resume reading below half the read-ahead."""
        self._unconsumed -= nbytes
        if self._paused and self._unconsumed < self._read_ahead // 2 and self._transport:
            self._paused = False
            self._transport.resume_reading()

    async def drained(self) -> None:
        await self._writable.wait()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
