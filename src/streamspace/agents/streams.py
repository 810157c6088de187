"""Agent side of VNC data streams: for each `stream_open` the agent opens a TCP connection to
the session's VNC port on the container network and pumps bytes both ways under credit flow
control (protocol/streams.py). A slow viewer only stalls its own stream.

The VNC server's bytes are read straight into the frame that carries them (stream header
first, then up to one chunk), so a chunk is not copied on its way from the socket to the
control plane's WebSocket; reading pauses while the stream's credit is spent.

A resumable stream (protocol/streams.py) also keeps what it sent until the viewer's end
acknowledges it; when the control-plane connection drops it stays open, detached, for
STREAM_RESUME_GRACE, and a `stream_open` naming its token and `resumeFrom` attaches it to the
new connection: what the viewer did not get is sent again, then the stream goes on.

A session with a VNC secret is logged into by the platform (`Platform.open_vnc`); the stream
then greets the viewer itself as a server that needs no password (agents/rfb_auth.py): the
greeting is read into the stream as if the server had sent it (so a resume replays it like
any other byte), and the viewer's handshake is answered here, not written to the server. The
handshake happens once per VNC connection: a resumed stream goes on where it was."""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamspace.agents.platforms.base import Platform
from streamspace.agents.rfb_auth import GREETING, ViewerGreeting
from streamspace.errors import StreamSpaceError
from streamspace.netio.links import BufferedLink
from streamspace.protocol.streams import (
    CHUNK,
    HEADER,
    REPLAY_LIMIT,
    WINDOW,
    Credit,
    Receipts,
    chunks,
    pack,
    race,
)

log = logging.getLogger(__name__)
SendControl = Callable[[Any, dict[str, Any]], None]
# Frames smaller than this are copied out so their buffer can be read into again; larger ones
# keep the buffer (its bytes go out as they are) and the next read gets a fresh one.
SMALL_READ = 16 * 1024
# A resumable stream acknowledges the viewer's bytes every this many (input is small: keys,
# pointer moves, update requests).
INPUT_ACK_EVERY = 16 * 1024
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
        self._woken = False
        self.error: str = ""

    def renumber(self, stream_id: int) -> None:
        """The stream was resumed under a new id: frames not yet taken carry it too."""
        self._header = HEADER.pack(stream_id)
        self._buffer[: HEADER.size] = self._header
        for frame in self._full:
            frame[: HEADER.size] = self._header

    def wake(self) -> None:
        """Make a waiting `next_frame` return an empty frame (the pump has other work)."""
        self._woken = True
        self._arrived.set()

    def _fresh(self) -> bytearray:
        buffer = bytearray(HEADER.size + CHUNK)
        buffer[: HEADER.size] = self._header
        return buffer

    async def next_frame(self) -> memoryview | bytes | None:
        while not self._full and self._filled == HEADER.size and not self._ended:
            if self._woken:
                self._woken = False
                return self._header
            self._arrived.clear()
            await self._arrived.wait()
        self._woken = False
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

    def inject(self, data: bytes) -> None:
        """Bytes the agent says to the viewer as if the VNC server had sent them."""
        while data and not self._ended:
            space = self.get_buffer(len(data))  # as a read from the server would fill it
            count = min(len(space), len(data))
            space[:count] = data[:count]
            data = data[count:]
            self.buffer_updated(count)

    async def write(self, data: bytes | memoryview) -> None:
        assert self._transport is not None
        if self._transport.is_closing():
            raise ConnectionResetError("the session's VNC connection is closed")
        self._transport.write(data)
        await self.drained()


class Sent(enum.Enum):
    SENT = "sent"
    AGAIN = "again"  # the stream was detached or resumed meanwhile: start over from `resend`
    CLOSED = "closed"


@dataclass(eq=False)
class _Stream:
    id: int
    session_id: str
    credit: Credit
    token: str = ""  # set: resumable
    receipts: Receipts = field(default_factory=lambda: Receipts(WINDOW))
    # viewer bytes to write, each with the generation that received it (credit goes back on
    # the connection that sent them, not on a later one)
    inbound: asyncio.Queue[tuple[int, bytes | memoryview] | None] = field(
        default_factory=asyncio.Queue
    )
    task: asyncio.Task[None] | None = None
    vnc: VncConnection | None = None
    greeting: ViewerGreeting | None = None  # set while the agent greets the viewer itself
    # Resumable streams: the VNC bytes read and not yet acknowledged by the viewer's end, as
    # (offset, frame) in order; `acked` is where the first one starts, `read` where the last
    # one ends. `resend` holds what a resume sends again before anything new.
    log: collections.deque[tuple[int, bytes | memoryview]] = field(
        default_factory=collections.deque
    )
    acked: int = 0
    read: int = 0
    resend: collections.deque[bytes | memoryview] = field(default_factory=collections.deque)
    received: int = 0  # viewer bytes received, over every connection
    input_acked: int = 0  # `received` as last acknowledged
    generation: int = 0  # bumped by each detach and resume
    attached: bool = True
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # acked, resumed, ended
    expiry: asyncio.TimerHandle | None = None
    ended: bool = False

    def trim(self, acked: int) -> None:
        """The viewer's end has every byte before `acked`: forget them."""
        if not self.acked <= acked <= self.read:
            return  # not an offset of this stream: ignore
        self.acked = acked
        while self.log and self.log[0][0] + len(self.log[0][1]) - HEADER.size <= acked:
            self.log.popleft()
        self.changed.set()

    def unacked(self) -> int:
        return self.read - self.acked

    def replay_from(self, delivered: int) -> None:
        """Queue the logged bytes from offset `delivered` on (the viewer has the rest)."""
        self.trim(delivered)
        self.resend.clear()
        for start, frame in self.log:
            skip = max(delivered - start, 0)
            self.resend.extend(chunks(bytes(memoryview(frame)[HEADER.size + skip :])))


class AgentStreams:
    def __init__(
        self,
        *,
        platform: Platform,
        send_control: SendControl,
        send_data: Callable[[bytes | memoryview], None],
        resume_grace: float = 30.0,
    ) -> None:
        self._platform = platform
        self._control = send_control
        self._data = send_data
        self._grace = resume_grace
        self._streams: dict[int, _Stream] = {}  # on the current connection, by stream id
        self._detached: dict[str, _Stream] = {}  # waiting to be resumed, by token
        self._tasks: set[asyncio.Task[None]] = set()

    def on_control(self, type_: str, payload: dict[str, Any]) -> None:
        stream_id = _count(payload.get("streamId"), 0)
        if type_ == "stream_open":
            if "resumeFrom" in payload:
                self._resume(stream_id, payload)
                return
            stream = _Stream(
                id=stream_id,
                session_id=str(payload.get("sessionId", "")),
                credit=Credit(_count(payload.get("window"), WINDOW)),
                token=str(payload.get("token", "")) if self._grace > 0 else "",
            )
            self._streams[stream_id] = stream
            stream.task = asyncio.create_task(self._run(stream), name=f"stream-{stream_id}")
            self._tasks.add(stream.task)
            stream.task.add_done_callback(self._tasks.discard)
            return
        existing = self._streams.get(stream_id)
        if existing is None:
            return
        if type_ == "stream_credit":
            existing.credit.grant(_count(payload.get("bytes"), 0))
        elif type_ == "stream_ack":
            existing.trim(_count(payload.get("bytes"), -1))
        elif type_ == "stream_close":
            if payload.get("keep") is True and existing.token and existing.vnc is not None:
                self._detach(existing)  # the viewer's replica may resume it from elsewhere
            else:
                self._end(existing)

    def on_data(self, stream_id: int, data: bytes | memoryview) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.receipts.received(len(data))
            stream.received += len(data)
            if stream.token and stream.received - stream.input_acked >= INPUT_ACK_EVERY:
                # the viewer's replica keeps its input until acknowledged: a few KiB, not
                # the half window after which credit goes back
                stream.input_acked = stream.received
                self._control("stream_ack", {"streamId": stream.id, "bytes": stream.received})
            stream.inbound.put_nowait((stream.generation, data))

    def detach_all(self) -> None:
        """The control-plane connection is gone: resumable streams wait for a resume (their
        VNC connections stay open) for the grace period; the others end."""
        for stream in list(self._streams.values()):
            if not stream.token or stream.vnc is None:
                self._end(stream)
            else:
                self._detach(stream)

    def _detach(self, stream: _Stream) -> None:
        del self._streams[stream.id]
        stream.attached = False
        stream.generation += 1
        stream.credit.reset(0)
        stream.changed.set()
        self._detached[stream.token] = stream
        stream.expiry = asyncio.get_running_loop().call_later(self._grace, self._expire, stream)

    def close_all(self) -> None:
        for stream in [*self._streams.values(), *self._detached.values()]:
            self._end(stream)

    async def closed(self) -> None:
        """Wait until every stream's VNC connection is closed (after `close_all`)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _expire(self, stream: _Stream) -> None:
        if self._detached.get(stream.token) is stream:
            log.info(
                "agent: stream of session %s not resumed within %.0f s; closing it",
                stream.session_id,
                self._grace,
            )
            self._end(stream)

    def _resume(self, stream_id: int, payload: dict[str, Any]) -> None:
        token, session_id = str(payload.get("token", "")), str(payload.get("sessionId", ""))
        attached = next(
            (x for x in self._streams.values() if token and x.token == token and x.vnc), None
        )
        if attached is not None and attached.session_id == session_id:
            # still on this connection: the link between the viewer's replica and this one
            # broke, not ours; the viewer's replica takes it over under a new id
            self._detach(attached)
        stream = self._detached.get(token)
        delivered = _count(payload.get("resumeFrom"), -1)
        problem = ""
        if stream is None or stream.session_id != session_id:
            problem = "no such stream is waiting (it ended, or the agent restarted)"
        elif not stream.acked <= delivered <= stream.read:
            problem = f"offset {delivered} is outside {stream.acked}..{stream.read}"
        if problem:
            if stream is not None and stream.session_id == session_id:
                self._end(stream)
            self._control(
                "stream_close",
                {
                    "streamId": stream_id,
                    "reason": f"the stream cannot be resumed: {problem}",
                    "code": "stream_not_resumable",
                },
            )
            return
        assert stream is not None and stream.vnc is not None
        del self._detached[token]
        if stream.expiry is not None:
            stream.expiry.cancel()
        stream.id = stream_id
        stream.attached = True
        stream.generation += 1
        stream.receipts = Receipts(WINDOW)
        stream.replay_from(delivered)
        stream.vnc.renumber(stream_id)
        self._streams[stream_id] = stream
        log.info(
            "agent: stream of session %s resumed at byte %d (%d bytes to send again)",
            session_id,
            delivered,
            stream.read - delivered,
        )
        self._control(
            "stream_opened",
            {
                "streamId": stream_id,
                "window": WINDOW,
                "resumable": True,
                "received": stream.received,
            },
        )
        stream.credit.reset(_count(payload.get("window"), WINDOW))
        stream.changed.set()
        stream.vnc.wake()

    def _end(self, stream: _Stream) -> None:
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]
        if self._detached.get(stream.token) is stream:
            del self._detached[stream.token]
        if stream.expiry is not None:
            stream.expiry.cancel()
        stream.ended = True
        stream.credit.close()
        stream.changed.set()
        stream.inbound.put_nowait(None)

    async def _run(self, stream: _Stream) -> None:
        try:
            _, vnc, authenticated = await self._platform.open_vnc(
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
        stream.vnc = vnc
        if authenticated:
            stream.greeting = ViewerGreeting()
            vnc.inject(GREETING)
        opened: dict[str, Any] = {"streamId": stream.id, "window": WINDOW}
        if stream.token:
            opened.update(resumable=True, received=0)
        self._control("stream_opened", opened)
        try:
            reason = await self._pump(stream, vnc)
        finally:
            vnc.close()
        if self._streams.get(stream.id) is stream:
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
            return ended()

        async def from_vnc_resumable() -> str:
            while True:
                while stream.resend:
                    data = stream.resend[0]
                    sent = await self._send(stream, pack(stream.id, data), len(data))
                    if sent is Sent.CLOSED:
                        return "stream closed"
                    if sent is Sent.SENT:
                        stream.resend.popleft()
                if stream.unacked() >= REPLAY_LIMIT:  # wait for the viewer's end to catch up
                    stream.changed.clear()
                    await stream.changed.wait()
                    if stream.ended:
                        return "stream closed"
                    continue
                frame = await vnc.next_frame()
                if frame is None:
                    return ended()
                size = len(frame) - HEADER.size
                if not size:
                    continue  # woken: a resume queued bytes to send again
                # A read that filled a small part of its 256 KiB buffer is copied for the log,
                # so the log holds what it counts, not whole buffers (sent as it is, though).
                kept = frame if size * 2 >= CHUNK or isinstance(frame, bytes) else bytes(frame)
                stream.log.append((stream.read, kept))
                stream.read += size
                vnc.consumed(size)
                if stream.resend:  # resumed while this frame was read: it goes after those
                    stream.resend.append(memoryview(frame)[HEADER.size :])
                    continue
                if await self._send(stream, frame, size) is Sent.CLOSED:
                    return "stream closed"

        def ended() -> str:
            if vnc.error:
                return f"stream error: {vnc.error}"
            return "the session's VNC server closed the connection"

        async def to_vnc() -> str:
            while (item := await stream.inbound.get()) is not None:
                generation, data = item
                size = len(data)
                if stream.greeting is not None:
                    data = self._greet(stream, vnc, data)
                if data:
                    await vnc.write(data)
                if generation != stream.generation:
                    continue  # its credit belonged to a connection that is gone
                if grant := stream.receipts.consumed(size):
                    self._control("stream_credit", {"streamId": stream.id, "bytes": grant})
            return "viewer closed the stream"

        try:
            pump = from_vnc_resumable() if stream.token else from_vnc()
            return await race(pump, to_vnc())
        except (OSError, StreamSpaceError) as exc:
            return f"stream error: {exc}"

    @staticmethod
    def _greet(stream: _Stream, vnc: VncConnection, data: bytes | memoryview) -> bytes:
        """Answer the viewer's part of the handshake; what comes after it is for the server."""
        assert stream.greeting is not None
        to_viewer, to_server = stream.greeting.receive(data)
        vnc.inject(to_viewer)
        if stream.greeting.done:
            stream.greeting = None
        return to_server

    async def _send(self, stream: _Stream, frame: bytes | memoryview, size: int) -> Sent:
        """Send one frame of a resumable stream within its credit, unless the stream was
        detached or resumed while it waited for that credit."""
        generation = stream.generation
        if not await stream.credit.take(size):
            return Sent.CLOSED
        if generation != stream.generation or not stream.attached:
            stream.credit.grant(size)
            return Sent.AGAIN
        self._data(frame)
        return Sent.SENT


def _count(value: object, default: int) -> int:
    """A non-negative integer from a control-plane payload; `default` for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return default
