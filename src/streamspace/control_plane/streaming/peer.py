"""The browser's replica's end of a peer hop (ws/vnc.py): a small WebSocket client for the
internal viewer endpoint of the replica that holds the agent.

Why not the `websockets` client: this hop carries every VNC byte of a cross-replica viewer, and
the library copies each incoming frame three times (into its buffer, out as a slice, into the
message). Here the event loop reads each frame's payload straight into a buffer of its own
(asyncio.BufferedProtocol) and the relay hands that buffer to the viewer socket as it is.
Frames going out (the viewer's input: keys, pointer, update requests; small) and close codes
reuse `websockets`' frame code.

A payload goes straight to the viewer's socket in the turn that completed it while no earlier
one waits for the relay task (streams.Passthrough). Only what the peer endpoint sends is
handled: binary and continuation frames (the bytes of one stream: message boundaries carry no
meaning), text frames (a resumable stream's control: `{"opened": {"resumable", "received"}}`
first, then `{"ack": n}`, the agent's running total of viewer bytes; this end sends its own
`{"ack": n}` of the agent's bytes delivered, see streaming/resume.py), ping, pong and close.
A close with 1001 or 1012 (the holding replica stopping, or the agent's connection moving
away) counts as lost, like a dropped connection: the stream may be resumed elsewhere.
Reading pauses while more than READ_AHEAD bytes wait for the viewer, so a slow viewer backs
up to the holding replica, whose stream credit then stalls that viewer's stream alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.frames import Close, Frame, Opcode

from streamspace.control_plane.streaming.streams import Passthrough
from streamspace.errors import Unavailable
from streamspace.netio.links import BufferedLink
from streamspace.netio.wsframes import header_size, payload_length
from streamspace.protocol import close_codes

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
READ_AHEAD = 1 << 20
MAX_FRAME = 4 << 20  # the peer sends chunks of 256 KiB; anything far larger is a broken peer
MAX_HEAD = 16 << 10
MAX_TEXT = 4 << 10  # the peer's control messages are a few dozen bytes
MOVED = (close_codes.GOING_AWAY, close_codes.SERVICE_RESTART)
# A resumable stream's first message says how it opened; a holding replica that predates
# resumable streams never sends one, and its first bytes say so instead.
OPENED_TIMEOUT = 10.0


class PeerControl:
    """What a resumable stream's peer link knows beyond its bytes (shared by both clients)."""

    def __init__(self) -> None:
        self.resumable = False
        self.received = 0
        self.on_ack: Callable[[int], None] | None = None
        self.ready = asyncio.get_running_loop().create_future()  # opened, data, or the end

    def settle(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def on_text(self, text: str) -> bool:
        """Handle a control message; False for one that is not."""
        try:
            message = json.loads(text)
        except ValueError:
            return False
        if not isinstance(message, dict):
            return False
        if isinstance(opened := message.get("opened"), dict):
            self.resumable = opened.get("resumable") is True
            received = opened.get("received", 0)
            self.received = received if isinstance(received, int) and received >= 0 else 0
            self.settle()
            return True
        if isinstance(ack := message.get("ack"), int):
            if self.on_ack is not None:
                self.on_ack(ack)
            return True
        return False


def ack_message(delivered: int) -> str:
    return json.dumps({"ack": delivered})


def refusal(code: int | None, reason: str) -> Unavailable:
    """The error for a peer link the holding replica closed before the stream opened."""
    if code == close_codes.GONE:
        return Unavailable(reason or "the stream cannot be resumed", code="stream_not_resumable")
    return Unavailable(reason or "the peer replica closed the stream", code="peer_unreachable")


class PeerProtocol(BufferedLink):
    """The peer link, a `streams.Source` for `streams.relay`: payloads come from `recv` (None
    at the end; `close_reason` and `lost` say how it ended) and the relay calls `consumed` once
    it has passed each one on."""

    def __init__(self, hello: Hello) -> None:
        super().__init__(read_ahead=READ_AHEAD)
        self._request = hello.request
        self._accept = hello.accept
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.data: asyncio.Queue[memoryview | None] = asyncio.Queue()
        self.close_reason = ""
        self.lost = False  # the link dropped without a close frame
        self._scratch = bytearray(64 << 10)
        self._head: bytearray | None = bytearray()  # None once the handshake is done
        self._header = bytearray(14)
        self._header_len = 0
        self._payload: bytearray | None = None
        self._got = 0
        self.direct = Passthrough()  # payloads straight to the viewer's socket when it can
        self.control = PeerControl()
        self.close_code: int | None = None

    # -- asyncio.BufferedProtocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self._transport is not None
        self._transport.write(self._request)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._payload is not None:
            return memoryview(self._payload)[self._got :]  # the fast path: payload in place
        if self._head is not None:
            return memoryview(self._scratch)
        return memoryview(self._scratch)[: self._header_missing()]

    def buffer_updated(self, nbytes: int) -> None:
        if self._payload is not None:
            self._got += nbytes
            if self._got == len(self._payload):
                self._frame_done()
            return
        self._feed(memoryview(self._scratch)[:nbytes])

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.opened.done():
            self.opened.set_exception(
                Unavailable(f"the peer replica closed the connection ({exc or 'no reason'})")
            )
        if not self.close_reason:
            self.lost = True
            self.close_reason = f"lost the connection to the peer replica ({exc or 'closed'})"
        self.control.settle()
        self.data.put_nowait(None)

    # -- parsing ---------------------------------------------------------------------------

    def _feed(self, view: memoryview) -> None:
        """Bytes that did not land in a payload buffer: handshake, frame headers, and payload
        bytes that arrived with the handshake."""
        while view and self._transport is not None and not self._transport.is_closing():
            if self._head is not None:
                view = self._handshake(view)
            elif self._payload is None:
                take = min(self._header_missing(), len(view))
                self._header[self._header_len : self._header_len + take] = view[:take]
                self._header_len, view = self._header_len + take, view[take:]
                if self._header_missing() == 0:
                    self._frame_start()
            else:
                take = min(len(self._payload) - self._got, len(view))
                self._payload[self._got : self._got + take] = view[:take]
                self._got, view = self._got + take, view[take:]
                if self._got == len(self._payload):
                    self._frame_done()

    def _handshake(self, view: memoryview) -> memoryview:
        assert self._head is not None
        self._head += view
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD:
                self._fail("the peer replica sent an oversized handshake response")
            return memoryview(b"")
        problem = response_problem(bytes(self._head[:end]), self._accept)
        rest = memoryview(bytes(self._head[end + 4 :]))
        self._head = None
        if problem:
            self._fail(problem)
        elif not self.opened.done():
            self.opened.set_result(None)
        return rest

    def _header_missing(self) -> int:
        if self._header_len < 2:
            return 2 - self._header_len
        return header_size(self._header[1]) - self._header_len

    def _frame_start(self) -> None:
        second, length = self._header[1], payload_length(self._header)
        if second & 0x80:
            self._fail("the peer replica sent a masked frame")
        elif length > MAX_FRAME:
            self._fail(f"the peer replica sent a frame of {length} bytes")
        else:
            self._payload, self._got = bytearray(length), 0
            if length == 0:
                self._frame_done()

    def _frame_done(self) -> None:
        assert self._payload is not None
        opcode, payload = self._header[0] & 0x0F, self._payload
        self._payload, self._header_len = None, 0
        if opcode in (Opcode.BINARY, Opcode.CONT):
            self.control.settle()
            if payload and not self.direct.offer(memoryview(payload)):
                self.data.put_nowait(memoryview(payload))
                self.received(len(payload))
        elif opcode == Opcode.TEXT:
            if len(payload) > MAX_TEXT or not self.control.on_text(
                payload.decode("utf-8", "replace")
            ):
                self._fail("the peer replica sent an unexpected text frame")
        elif opcode == Opcode.PING:
            self._write(Frame(Opcode.PONG, bytes(payload)))
        elif opcode == Opcode.CLOSE:
            close = Close.parse(bytes(payload)) if payload else None
            self.close_reason = close.reason if close and close.reason else "stream closed"
            self.close_code = close.code if close else None
            self.lost = self.close_code in MOVED
            self.close(close.code if close else 1000, "")
        elif opcode != Opcode.PONG:
            self._fail(f"the peer replica sent an unexpected frame (opcode {opcode})")

    # -- sending and closing ---------------------------------------------------------------

    def _write(self, frame: Frame) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame.serialize(mask=True))

    def _fail(self, reason: str) -> None:
        self.close_reason = reason
        if not self.opened.done():
            self.opened.set_exception(Unavailable(reason, code="peer_unreachable"))
        self.close(1002, "")

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.close_reason:  # ended on purpose here: not a lost link
            self.close_reason = "stream closed"
        if self._transport is not None and not self._transport.is_closing():
            self._write(Frame(Opcode.CLOSE, Close(code, reason).serialize()))
            self._transport.close()

    async def recv(self) -> memoryview | None:
        return await self.data.get()

    # resume.Source: what the resumable stream's control said
    @property
    def resumable(self) -> bool:
        return self.control.resumable

    @property
    def input_received(self) -> int:
        return self.control.received

    @property
    def on_ack(self) -> Callable[[int], None] | None:
        return self.control.on_ack

    @on_ack.setter
    def on_ack(self, callback: Callable[[int], None] | None) -> None:
        self.control.on_ack = callback

    def ack(self, delivered: int) -> None:
        if self.control.resumable:
            self._write(Frame(Opcode.TEXT, ack_message(delivered).encode()))

    def consumed(self, nbytes: int) -> None:
        self.direct.written(nbytes)
        super().consumed(nbytes)

    async def send(self, data: bytes) -> bool:
        """Send viewer bytes; False once the link is closing."""
        if self._transport is None or self._transport.is_closing():
            return False
        self._write(Frame(Opcode.BINARY, data))
        await self.drained()
        return True


@dataclass(frozen=True)
class Hello:
    """The opening handshake of a peer link: where to connect, what to send, what to expect."""

    host: str
    port: int
    secure: bool
    request: bytes
    accept: str  # the Sec-WebSocket-Accept the peer must answer with

    @classmethod
    def to(cls, url: str) -> Hello:
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        key = base64.b64encode(secrets.token_bytes(16))
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (443 if secure else 80),
            secure=secure,
            request=request,
            accept=base64.b64encode(hashlib.sha1(key + GUID).digest()).decode(),
        )


def response_problem(head: bytes, accept: str) -> str:
    """What is wrong with the peer's handshake response (its head, without the blank line);
    empty when it accepted the upgrade."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        return f"the peer replica refused the stream: {lines[0]}"
    if headers.get("sec-websocket-accept") != accept:
        return "the peer replica answered with a wrong WebSocket accept key"
    return ""


async def connect(url: str) -> PeerProtocol:
    """Open a WebSocket to `url` (ws:// or wss://) and complete the handshake (callers bound
    the time it may take)."""
    hello = Hello.to(url)
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: PeerProtocol(hello),
        hello.host,
        hello.port,
        ssl=ssl.create_default_context() if hello.secure else None,
    )
    try:
        await protocol.opened
    except BaseException:
        protocol.close()
        raise
    return protocol


async def opened(link: PeerProtocol | LibraryPeer) -> None:
    """Wait until a resumable stream's link says how it opened (or its bytes start, from a
    holding replica that predates resumable streams); Unavailable if it closed instead."""
    async with asyncio.timeout(OPENED_TIMEOUT):
        await link.control.ready
    if not link.control.resumable and link.close_reason and not link.lost:
        raise refusal(link.close_code, link.close_reason)


class LibraryPeer:
    """The library path (STREAMSPACE_LEAN_PEER_CLIENT=false): the same `streams.Source` over
    the `websockets` client. Its read queue (`max_queue` messages) is the read-ahead: a slow
    viewer stops the reading, which backs up to the holding replica as on the lean path."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.close_reason = ""
        self.close_code: int | None = None
        self.lost = False
        self.control = PeerControl()
        self._closing: asyncio.Task[None] | None = None
        self._first: bytes | None = None
        self._acks: set[asyncio.Task[None]] = set()
        self._reader = asyncio.create_task(self._first_message())

    @classmethod
    async def connect(cls, url: str) -> LibraryPeer:
        try:
            ws = await ws_connect(
                url, max_size=MAX_FRAME, compression=None, open_timeout=None, max_queue=4
            )
        except InvalidHandshake as exc:
            raise Unavailable(
                f"the peer replica refused the stream: {exc}", code="peer_unreachable"
            ) from exc
        return cls(ws)

    async def _first_message(self) -> None:
        """Read until the stream's first bytes (kept for `recv`) or its end, so `opened` can
        wait on `control.ready`."""
        while not self.control.ready.done():
            message = await self._next()
            if message is None or isinstance(message, bytes):
                self._first = message or None
                self.control.settle()

    async def _next(self) -> bytes | None:
        """The next message with bytes in it (None at the end); control messages are handled."""
        while True:
            try:
                message = await self._ws.recv()
            except ConnectionClosed as exc:
                self._ended(exc)
                return None
            if isinstance(message, str):
                if len(message) > MAX_TEXT or not self.control.on_text(message):
                    self._ended_by_us("the peer replica sent an unexpected text frame")
                    return None
            elif message:
                return message

    def _ended(self, exc: ConnectionClosed) -> None:
        self.control.settle()
        if self.close_reason:
            return
        if exc.rcvd is None:
            self.lost = True
            self.close_reason = f"lost the connection to the peer replica ({exc})"
        else:
            self.close_code = exc.rcvd.code
            self.lost = exc.rcvd.code in MOVED
            self.close_reason = exc.rcvd.reason or "stream closed"

    def _ended_by_us(self, reason: str) -> None:
        self.close_reason = reason
        self.control.settle()
        self.close(1002, "")

    async def recv(self) -> bytes | None:
        await asyncio.wait([self._reader])
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self.close_reason:
            return None
        return await self._next()

    @property
    def resumable(self) -> bool:
        return self.control.resumable

    @property
    def input_received(self) -> int:
        return self.control.received

    @property
    def on_ack(self) -> Callable[[int], None] | None:
        return self.control.on_ack

    @on_ack.setter
    def on_ack(self, callback: Callable[[int], None] | None) -> None:
        self.control.on_ack = callback

    def ack(self, delivered: int) -> None:
        if self.control.resumable and self._closing is None:
            task = asyncio.create_task(self._send_quietly(ack_message(delivered)))
            self._acks.add(task)  # a task nobody holds may be collected mid-send
            task.add_done_callback(self._acks.discard)

    async def _send_quietly(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            self._ended(exc)

    def consumed(self, nbytes: int) -> None:
        """Nothing to do: the library reads on as its queue drains."""

    async def send(self, data: bytes) -> bool:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            self._ended(exc)
            return False
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.close_reason:
            self.close_reason = "stream closed"
        self._reader.cancel()
        self.control.settle()
        if self._closing is None:
            self._closing = asyncio.create_task(self._ws.close(code, reason))
