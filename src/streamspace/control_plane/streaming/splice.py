"""The browser's replica's end of a peer hop when both of its sockets are plain TCP on Linux:
the peer's data frames move from the peer socket to the viewer's through a pipe (splice(2)),
so their bytes never enter this process. control_plane/streaming/peer.py is the general client (TLS,
other systems) and the reference for what is accepted.

Why: on a cross-replica stream this replica only forwards; reading each 256 KiB frame into a
buffer and writing it out again cost two copies and a zeroed buffer per frame, a quarter of
the path's CPU. A server's frame (unmasked) is as valid to the browser as it was to us, so
data frames go out as they came: header from here, payload spliced. Control frames (ping,
close) are read and handled here, never forwarded.

Order and framing on the viewer's socket: the payload is spliced straight to the socket only
while its transport holds nothing; otherwise (the browser is slow, or the socket took only
part of a splice) the bytes go through the transport, which keeps them in order and pushes
back; reading from the peer then waits until the transport takes writes again, so a slow
viewer backs up to the holding replica (and its stream credit) as with the general client.
While a frame is half written the viewer's own frames (pongs) wait (`hold_writes`); a frame
cut short (a dead peer, or this replica shutting down and closing the viewer with 1012) is
padded to its announced length, so the close that follows still parses.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket

from websockets.frames import Close, Opcode

from streamspace.control_plane.asgi.wsserver import LeanWebSocketProtocol
from streamspace.control_plane.streaming.peer import MAX_FRAME, MAX_HEAD, Hello, response_problem
from streamspace.errors import Unavailable
from streamspace.netio.wsframes import (
    header_size,
    masked_binary,
    masked_frame,
    payload_length,
)

_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
PIPE_SIZE = 512 << 10  # a whole 256 KiB frame with its header in one splice
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python 3.10+ on Linux; spelled out for typing)
_STEPS = 64  # frames or pieces moved per readiness callback before letting others run


def usable(viewer: object) -> bool:
    """True when `viewer` (the browser's socket) is one splice can write to."""
    if not hasattr(os, "splice") or not isinstance(viewer, LeanWebSocketProtocol):
        return False
    transport = viewer.transport
    return (
        viewer.lean
        and transport.get_extra_info("ssl_object") is None
        and transport.get_extra_info("socket") is not None
    )


class SplicedPeer:
    """A `streams.Source` for `streams.relay`: `recv` yields no bytes (they are spliced) and
    returns None once the link ended; `close_reason` and `lost` say how it ended."""

    def __init__(self, sock: socket.socket, viewer: LeanWebSocketProtocol) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock, self._fd = sock, sock.fileno()
        self._viewer = viewer
        self._out = viewer.transport
        self._out_fd = self._out.get_extra_info("socket").fileno()
        self._pipe_r, self._pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._pipe_w, _F_SETPIPE_SZ, PIPE_SIZE)
        self._out.set_write_buffer_limits(high=0)  # pause_writing whenever anything waits
        self._in_pipe = 0
        self._head = bytearray()  # the next frame's header so far
        self._left = 0  # bytes of the current data frame still to move
        self._begun = False  # some of that frame has gone toward the viewer
        self._control: tuple[int, bytearray, int] | None = None  # opcode, payload, length
        self._reading = False
        self._ended = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._resume: asyncio.Task[None] | None = None
        self.close_reason = ""
        self.lost = False

    @classmethod
    async def connect(cls, hello: Hello, viewer: LeanWebSocketProtocol) -> SplicedPeer:
        loop = asyncio.get_running_loop()
        family, kind, proto, _, address = (
            await loop.getaddrinfo(hello.host, hello.port, type=socket.SOCK_STREAM)
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_sendall(sock, hello.request)
            problem = response_problem(await _response_head(loop, sock), hello.accept)
            if problem:
                raise Unavailable(problem, code="peer_unreachable")
        except BaseException:
            sock.close()
            raise
        link = cls(sock, viewer)
        link._start_reading()
        return link

    # -- the Source interface ----------------------------------------------------------------

    async def recv(self) -> None:
        await self._ended.wait()
        return None

    def consumed(self, n: int) -> None:
        return None  # nothing is handed out: the bytes were spliced

    async def send(self, data: bytes) -> bool:
        """Send viewer bytes; False once the link is closing."""
        if self._ended.is_set():
            return False
        try:
            async with self._send_lock:
                await self._loop.sock_sendall(self._sock, b"".join(masked_binary(data)))
        except OSError as exc:
            self._end(f"lost the connection to the peer replica ({exc})", lost=True)
            return False
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.close_reason:
            self.close_reason = "stream closed"
        if not self._ended.is_set():
            with contextlib.suppress(OSError):  # best effort: the socket is closed next
                self._sock.send(_masked_control(Opcode.CLOSE, Close(code, reason).serialize()))
        self._end(self.close_reason)

    # -- reading -----------------------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading and not self._ended.is_set():
            self._reading = True
            self._loop.add_reader(self._fd, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _on_readable(self) -> None:
        try:
            for _ in range(_STEPS):
                if self._ended.is_set() or not self._step():
                    return
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(f"lost the connection to the peer replica ({exc})", lost=True)

    def _step(self) -> bool:
        """Move what can be moved now; False to wait for the next readiness."""
        if self._left:
            return self._move()
        if self._control is not None:
            return self._read_control()
        if not self._head and self._whole_frame_ahead():
            return True
        missing = _header_missing(self._head)
        if missing:
            data = self._sock.recv(missing)
            if not data:
                self._end("lost the connection to the peer replica (closed)", lost=True)
                return False
            self._head += data
            return True
        return self._frame_start()

    def _whole_frame_ahead(self) -> bool:
        """At a frame boundary: when a data frame's whole header is already in the socket,
        splice header and payload together (one packet to the browser, not two); anything
        else is read header first, the general way."""
        peeked = self._sock.recv(10, socket.MSG_PEEK)
        if len(peeked) < 2 or peeked[0] & 0x0F not in (Opcode.BINARY, Opcode.CONT):
            return False
        size = header_size(peeked[1])
        if len(peeked) < size or peeked[1] & 0x80 or peeked[0] & 0x70:
            return False
        length = payload_length(peeked)
        if not length or length > MAX_FRAME or self._out.is_closing():
            return False
        self._viewer.hold_writes(self._cut_short)
        self._left = size + length
        return True

    def _frame_start(self) -> bool:
        first, second = self._head[0], self._head[1]
        length = payload_length(self._head)
        opcode, head = first & 0x0F, bytes(self._head)
        self._head.clear()
        if second & 0x80:
            return self._fail("the peer replica sent a masked frame")
        if length > MAX_FRAME:
            return self._fail(f"the peer replica sent a frame of {length} bytes")
        if opcode in (Opcode.BINARY, Opcode.CONT):
            if length and self._out.is_closing():
                self._end("viewer disconnected")
                return False
            if length:
                self._viewer.hold_writes(self._cut_short)
                self._out.write(head)  # as it came: a server's frame, valid for the browser
                self._left, self._begun = length, True
            return True
        if opcode not in (Opcode.PING, Opcode.PONG, Opcode.CLOSE) or length > 125:
            return self._fail(f"the peer replica sent an unexpected frame (opcode {opcode})")
        self._control = (opcode, bytearray(), length)
        return True

    def _move(self) -> bool:
        """Move the current data frame's payload toward the viewer."""
        if self._out.is_closing():
            self._end("viewer disconnected")
            return False
        if self._out.get_write_buffer_size():  # the viewer is behind: after what waits
            self._wait_for_viewer()
            return False
        if not self._in_pipe:
            moved = os.splice(self._fd, self._pipe_w, min(self._left, PIPE_SIZE), flags=_FLAGS)
            if not moved:
                self._end("lost the connection to the peer replica (closed)", lost=True)
                return False
            self._in_pipe, self._left, self._begun = moved, self._left - moved, True
        try:
            self._in_pipe -= os.splice(self._pipe_r, self._out_fd, self._in_pipe, flags=_FLAGS)
        except BlockingIOError:
            pass
        except OSError:  # the browser went away
            self._end("viewer disconnected")
            return False
        if self._in_pipe:  # the viewer's socket is full: the rest waits in its transport
            self._out.write(os.read(self._pipe_r, self._in_pipe))
            self._in_pipe = 0
        if not self._left:
            self._begun = False
            self._viewer.release_writes()
        return True

    def _cut_short(self) -> None:
        """The viewer's socket must write now (this replica is shutting down): end here."""
        self._end("this replica is shutting down; reconnect")

    def _wait_for_viewer(self) -> None:
        """Bytes wait in the viewer's transport: stop reading the peer until it has written
        them all (its limits are 0: `writable` is set only while it holds nothing)."""
        self._stop_reading()

        async def resume() -> None:
            await self._viewer.writable.wait()
            self._start_reading()

        self._resume = self._loop.create_task(resume())

    def _read_control(self) -> bool:
        assert self._control is not None
        opcode, payload, length = self._control
        if len(payload) < length:
            data = self._sock.recv(length - len(payload))
            if not data:
                self._end("lost the connection to the peer replica (closed)", lost=True)
                return False
            payload += data
            if len(payload) < length:
                return True
        self._control = None
        if opcode == Opcode.PING:
            self._loop.create_task(self._send_frame(_masked_control(Opcode.PONG, bytes(payload))))
        elif opcode == Opcode.CLOSE:
            close = Close.parse(bytes(payload)) if payload else None
            self.close_reason = close.reason if close and close.reason else "stream closed"
            self.close(close.code if close else 1000)
            return False
        return True

    async def _send_frame(self, frame: bytes) -> None:
        with contextlib.suppress(OSError):
            async with self._send_lock:
                await self._loop.sock_sendall(self._sock, frame)

    # -- ending ------------------------------------------------------------------------------

    def _fail(self, reason: str) -> bool:
        self.close_reason = reason
        self.close(1002)
        return False

    def _end(self, reason: str, *, lost: bool = False) -> None:
        if self._ended.is_set():
            return
        if not self.close_reason:
            self.close_reason, self.lost = reason, lost
        self._stop_reading()
        if self._resume is not None:
            self._resume.cancel()
        if self._begun and not self._out.is_closing():
            # A frame cut short: pad it out, so what the viewer is told next still parses.
            if self._in_pipe:
                with contextlib.suppress(OSError):
                    self._out.write(os.read(self._pipe_r, self._in_pipe))
            self._out.write(bytes(self._left))
        self._left = self._in_pipe = 0
        self._begun = False
        self._viewer.release_writes()
        self._sock.close()
        os.close(self._pipe_r)
        os.close(self._pipe_w)
        self._ended.set()


def _header_missing(head: bytearray) -> int:
    return 2 - len(head) if len(head) < 2 else header_size(head[1]) - len(head)


def _masked_control(opcode: int, payload: bytes) -> bytes:
    return b"".join(masked_frame(opcode, payload))


async def _response_head(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """The handshake response's head, read without taking a byte of what follows it."""
    while True:
        await _readable(loop, sock.fileno())
        peeked = sock.recv(MAX_HEAD, socket.MSG_PEEK)
        if not peeked:
            raise Unavailable("the peer replica closed the connection (no reason)")
        end = peeked.find(b"\r\n\r\n")
        if end >= 0:
            sock.recv(end + 4)
            return peeked[:end]
        if len(peeked) >= MAX_HEAD:
            raise Unavailable("the peer replica sent an oversized handshake response")
        await asyncio.sleep(0.005)  # part of the head: wait for the rest without spinning


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
