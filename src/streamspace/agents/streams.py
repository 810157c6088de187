"""Agent side of VNC data streams: for each `stream_open` the agent opens a TCP connection to
the session's VNC port on the container network and pumps bytes both ways under credit flow
control (protocol/streams.py). A slow viewer only stalls its own stream.

The VNC server's bytes are read straight into the frame that carries them (stream header
first, then up to one chunk), so a chunk is not copied on its way from the socket to the
control plane's WebSocket; reading pauses while the stream's credit is spent."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamspace.agents.platforms.base import Platform
from streamspace.errors import StreamSpaceError
from streamspace.netio.links import BufferedLink
from streamspace.protocol.streams import CHUNK, HEADER, WINDOW, Credit, Receipts, race

log = logging.getLogger(__name__)
SendControl = Callable[[Any, dict[str, Any]], None]
# Frames smaller than this are copied out so their buffer can be read into again; larger ones
# keep the buffer (its bytes go out as they are) and the next read gets a fresh one.
SMALL_READ = 16 * 1024
# Bytes read from the VNC server but not yet sent (waiting for credit) before reading pauses.
READ_AHEAD = 2 * CHUNK


class VncConnection(BufferedLink):
    """One TCP connection to a session's VNC server. Its bytes become ready-made data frames
    (`HEADER` + bytes) that the pump takes with `next_frame` (None once the server closed or
    the link failed); the pump calls `consumed` once a frame is sent.

    Reads go on filling the current frame until the pump takes it, so while the pump waits
    (for credit, or for the control plane's socket) the VNC server's many small writes leave
    as one large frame, not one frame each: every frame costs a header, a send and a receive
    on each hop to the browser. An idle pump takes each read at once, adding no delay."""

    def __init__(self, stream_id: int) -> None:
        super().__init__(read_ahead=READ_AHEAD)
        self._header = HEADER.pack(stream_id)
        self._buffer = self._fresh()
        self._filled = HEADER.size
        self._full: collections.deque[memoryview] = collections.deque()
        self._arrived = asyncio.Event()
        self._ended = False
        self.error: str = ""

    def _fresh(self) -> bytearray:
        buffer = bytearray(HEADER.size + CHUNK)
        buffer[: HEADER.size] = self._header
        return buffer

    async def next_frame(self) -> memoryview | bytes | None:
        while not self._full and self._filled == HEADER.size and not self._ended:
            self._arrived.clear()
            await self._arrived.wait()
        if self._full:
            return self._full.popleft()
        if self._filled == HEADER.size:
            return None  # ended, and everything read was taken
        end, self._filled = self._filled, HEADER.size
        if end - HEADER.size < SMALL_READ:
            return bytes(memoryview(self._buffer)[:end])  # copied out: read into again
        frame = memoryview(self._buffer)[:end]
        self._buffer = self._fresh()
        return frame

    # -- asyncio.BufferedProtocol ------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        if self._filled == len(self._buffer):  # a whole chunk: it goes as it is
            self._full.append(memoryview(self._buffer))
            self._buffer, self._filled = self._fresh(), HEADER.size
        self._arrived.set()
        self.received(nbytes)

    def eof_received(self) -> bool:
        self._ended = True
        self._arrived.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if exc is not None:
            self.error = str(exc)
        self._ended = True
        self._arrived.set()

    async def write(self, data: bytes | memoryview) -> None:
        assert self._transport is not None
        if self._transport.is_closing():
            raise ConnectionResetError("the session's VNC connection is closed")
        self._transport.write(data)
        await self.drained()


@dataclass(eq=False)
class _Stream:
    id: int
    session_id: str
    credit: Credit
    receipts: Receipts = field(default_factory=lambda: Receipts(WINDOW))
    inbound: asyncio.Queue[bytes | memoryview | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class AgentStreams:
    def __init__(
        self,
        *,
        platform: Platform,
        send_control: SendControl,
        send_data: Callable[[bytes | memoryview], None],
    ) -> None:
        self._platform = platform
        self._control = send_control
        self._data = send_data
        self._streams: dict[int, _Stream] = {}

    def on_control(self, type_: str, payload: dict[str, Any]) -> None:
        stream_id = int(payload.get("streamId", 0))
        if type_ == "stream_open":
            stream = _Stream(
                id=stream_id,
                session_id=str(payload.get("sessionId", "")),
                credit=Credit(int(payload.get("window", WINDOW))),
            )
            self._streams[stream_id] = stream
            stream.task = asyncio.create_task(self._run(stream), name=f"stream-{stream_id}")
            return
        existing = self._streams.get(stream_id)
        if existing is None:
            return
        if type_ == "stream_credit":
            existing.credit.grant(int(payload.get("bytes", 0)))
        elif type_ == "stream_close":
            self._end(existing)

    def on_data(self, stream_id: int, data: bytes | memoryview) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.receipts.received(len(data))
            stream.inbound.put_nowait(data)

    def close_all(self) -> None:
        for stream in list(self._streams.values()):
            self._end(stream)

    def _end(self, stream: _Stream) -> None:
        self._streams.pop(stream.id, None)
        stream.credit.close()
        stream.inbound.put_nowait(None)

    async def _run(self, stream: _Stream) -> None:
        try:
            _, vnc = await self._platform.open_vnc(
                stream.session_id, lambda: VncConnection(stream.id)
            )
        except (StreamSpaceError, OSError) as exc:
            reason = exc.message if isinstance(exc, StreamSpaceError) else str(exc)
            self._control(
                "stream_close",
                {
                    "streamId": stream.id,
                    "reason": f"cannot reach the session's VNC server: {reason}",
                },
            )
            self._end(stream)
            return
        self._control("stream_opened", {"streamId": stream.id, "window": WINDOW})
        try:
            reason = await self._pump(stream, vnc)
        finally:
            vnc.close()
        if stream.id in self._streams:
            self._control("stream_close", {"streamId": stream.id, "reason": reason})
        self._end(stream)

    async def _pump(self, stream: _Stream, vnc: VncConnection) -> str:
        async def from_vnc() -> str:
            while (frame := await vnc.next_frame()) is not None:
                size = len(frame) - HEADER.size
                if not await stream.credit.take(size):
                    return "stream closed"
                self._data(frame)
                vnc.consumed(size)
            if vnc.error:
                return f"stream error: {vnc.error}"
            return "the session's VNC server closed the connection"

        async def to_vnc() -> str:
            while (data := await stream.inbound.get()) is not None:
                await vnc.write(data)
                if grant := stream.receipts.consumed(len(data)):
                    self._control("stream_credit", {"streamId": stream.id, "bytes": grant})
            return "viewer closed the stream"

        try:
            return await race(from_vnc(), to_vnc())
        except (OSError, StreamSpaceError) as exc:
            return f"stream error: {exc}"
