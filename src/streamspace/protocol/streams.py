"""VNC data streams multiplexed on the agent's WebSocket, with per-stream credit flow control.

Bytes travel in binary frames: a 4-byte big-endian stream id, then at most CHUNK bytes.
Control travels in JSON envelopes: `stream_open {streamId, sessionId, window}` (control plane ->
agent), `stream_opened {streamId, window}`, `stream_credit {streamId, bytes}` and
`stream_close {streamId, reason}` (either way). A sender may have at most the receiver's
granted window in flight; the receiver grants credit back as its consumer takes the bytes, so
a slow viewer only ever stalls its own stream. No I/O here.

Resumable streams (the control plane names one with a `token` in `stream_open`; the agent says
`resumable: true` in `stream_opened`) survive the agent's connection: when it drops, the agent
keeps the VNC connection open for STREAM_RESUME_GRACE and the viewer's replica opens the stream
again, on whichever replica now holds the agent, with `stream_open {..., token, resumeFrom}`:
`resumeFrom` is how many of the agent's bytes the viewer got, the agent's `stream_opened`
carries `received` (how many viewer bytes it got), and each side sends the other's bytes again
from there. To know what it can forget, each side acknowledges the other's bytes end to end
with `stream_ack {streamId, bytes}` (a running total), so each keeps at most REPLAY_LIMIT of
its own unacknowledged bytes.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Coroutine
from typing import Any

from streamspace.errors import ProtocolError

HEADER = struct.Struct(">I")
CHUNK = 256 * 1024
# Bytes a sender may have in flight per stream (also what a stalled viewer can pin in the
# replica's memory). Credit goes back once half of it is consumed: per 2 chunks, not per chunk.
WINDOW = 1024 * 1024
# Bytes a resumable stream's sender keeps until the viewer's end acknowledges them (reading
# from the VNC server pauses there), and how often that end acknowledges.
REPLAY_LIMIT = 8 * 1024 * 1024
ACK_EVERY = 1024 * 1024


def pack(stream_id: int, data: bytes | memoryview) -> bytes:
    return HEADER.pack(stream_id) + data


def unpack(frame: bytes) -> tuple[int, memoryview]:
    """Split a binary frame; the data is a view of the frame, not a copy (relays pass it on
    as it is, and every copy of a 256 KiB chunk costs more than the rest of the hop)."""
    if len(frame) < HEADER.size:
        raise ProtocolError("binary frame shorter than its stream header", code="bad_frame")
    if len(frame) > HEADER.size + CHUNK:
        raise ProtocolError(f"binary frame over {CHUNK} bytes of data", code="message_too_big")
    return HEADER.unpack_from(frame)[0], memoryview(frame)[HEADER.size :]


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]


class Credit:
    """Bytes we may still send; `take` waits until the peer grants enough."""

    def __init__(self, initial: int) -> None:
        self._available = initial
        self._changed = asyncio.Event()
        self.closed = False

    async def take(self, n: int) -> bool:
        while self._available < n and not self.closed:
            self._changed.clear()
            await self._changed.wait()
        if self.closed:
            return False
        self._available -= n
        return True

    def grant(self, n: int) -> None:
        self._available += n
        self._changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    def reset(self, available: int) -> None:
        """A new connection's window (0 while there is none): what was granted before is
        void."""
        self._available = available
        self._changed.set()


class Receipts:
    """Bytes received but not yet granted back; says when to send a credit message."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.outstanding = 0  # received, not yet consumed, from the sender's point of view
        self._consumed = 0

    def received(self, n: int) -> None:
        self.outstanding += n
        if self.outstanding > self.window:
            raise ProtocolError("stream peer sent beyond its credit window", code="flow_control")

    def consumed(self, n: int) -> int:
        """Record consumption; returns bytes to grant now (0 to wait for more)."""
        self._consumed += n
        if self._consumed < self.window // 2:
            return 0
        grant, self._consumed = self._consumed, 0
        self.outstanding -= grant
        return grant


async def race(*coroutines: Coroutine[Any, Any, str]) -> str:
    """Run the two pumps of a stream until one ends; cancel the other; return the first's
    result (its exception propagates)."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return next(iter(done)).result()
