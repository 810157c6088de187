"""The control plane's WebSocket server protocol: uvicorn's own (`websockets` sans-I/O) for the
handshake and the close, a lean frame reader and writer of ours for the open connection.

Why: every agent frame (heartbeats, acks, pongs, 256 KiB VNC chunks) and every viewer frame
crosses this layer, and on a busy replica it was the largest single cost. `websockets`' parser
runs a generator per frame, appends every byte to a buffer, slices it out and unmasks it into
a third copy; uvicorn then pauses and resumes the socket around every message. Here a frame
is parsed with a few integer reads; once the connection is open the event loop reads into
buffers we hand out (asyncio.BufferedProtocol), so a large payload's bytes land in place in a
buffer the connection reuses (no bytes object per read, no copy, no zeroing per frame), and
`websockets`' C `apply_mask` unmasks it into the message; reading pauses only when the application
falls behind (more than MAX_QUEUED messages or `ws_max_size` bytes waiting), and a frame goes
out as its header and its payload in one vectored write, with no serialisation copy.

What it checks, as RFC 6455 asks of a server: client frames are masked (1002 otherwise), no
reserved bits (permessage-deflate is off on every socket; a connection that negotiates it
anyway keeps uvicorn's frames), known
opcodes, control frames unfragmented and at most 125 bytes, continuation frames only inside a
fragmented message, text is UTF-8 (1007), messages no larger than `ws_max_size` (1009). A ping
is answered with a pong; a close is echoed and ends the connection; the application sees the
same ASGI events as with uvicorn's protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import ProtocolError as WsProtocolError
from websockets.frames import Close, Frame, Opcode
from websockets.speedups import apply_mask

from streamspace.netio.wsframes import frame_header

MAX_QUEUED = 64  # messages waiting for the application before reading pauses
# The ASGI scope extension under which the protocol offers `send_now` to the application.
FRAMES_EXTENSION = "streamspace.frames"
_CONTROL = (Opcode.CLOSE, Opcode.PING, Opcode.PONG)
_DATA = (Opcode.CONT, Opcode.TEXT, Opcode.BINARY)
_SMALL = 16 << 10  # payloads up to this size are written together with their header
# Where reads land outside large payloads (buffered mode). One for the process: the event
# loop calls `buffer_updated` right after the read that filled it, and that copies it out.
_SCRATCH = memoryview(bytearray(64 << 10))
_SPARE = 1 << 20  # large payloads up to this size reuse one buffer per connection


class FrameError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class _BufferedReads(asyncio.BufferedProtocol):
    """The transport's protocol once a connection is lean: the event loop reads straight into
    the buffers the connection hands out (a large payload's bytes land in place, with no bytes
    object per read and no copy into the payload); everything else goes to the connection."""

    def __init__(self, ws: LeanWebSocketProtocol) -> None:
        self._ws = ws

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._ws.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._ws.buffer_updated(nbytes)

    def eof_received(self) -> None:
        self._ws.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._ws.connection_lost(exc)

    def pause_writing(self) -> None:
        self._ws.pause_writing()

    def resume_writing(self) -> None:
        self._ws.resume_writing()


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol with the open connection's frames handled here
    (see the module's docstring); pass the class as uvicorn's `ws`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean = False  # set once the handshake's 101 is written
        self._buf = bytearray()
        self._payload: memoryview | None = None  # a large frame's payload, being gathered
        self._got = 0
        self._spare = bytearray()  # large payloads are gathered here, one after the other
        self._mask = b""
        self._first = 0  # that frame's first byte (FIN and opcode)
        self._message: list[bytes] = []  # the fragments of a fragmented message so far
        self._message_type = 0
        self._message_size = 0
        self._queued = 0  # bytes queued for the application
        # Set by the application (through FRAMES_EXTENSION) to take binary messages as they
        # are parsed, without the queue and a task switch; it returns False to leave one to
        # the queue. Only used while nothing waits in the queue, so the order holds.
        self.on_binary: Callable[[bytes], bool] | None = None

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        extensions: dict[str, Any] = self.scope["extensions"]
        extensions[FRAMES_EXTENSION] = self

    # -- reading -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self._lean:  # the handshake: uvicorn's
            super().data_received(data)
            return
        try:
            self._receive(data)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)

    def _go_lean(self) -> None:
        """The handshake is done: bytes the sans-I/O parser holds are ours from here on. A
        connection that negotiated an extension (permessage-deflate, when a server is run with
        `ws_per_message_deflate`) stays on uvicorn's frames, which know how to undo it."""
        if self.conn.extensions:
            return
        self._lean = True
        leftover = bytes(self.conn.reader.buffer)
        self.conn.reader.buffer.clear()
        set_protocol = getattr(self.transport, "set_protocol", None)
        if set_protocol is not None:  # reads into our buffers from here on
            set_protocol(_BufferedReads(self))
        if leftover:
            self.data_received(leftover)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._payload is not None:  # the rest of a large payload: read in place
            return self._payload[self._got :]
        return _SCRATCH

    def buffer_updated(self, nbytes: int) -> None:
        try:
            if self._payload is not None:
                self._got += nbytes
                if self._got == len(self._payload):
                    self._gathered()
            else:
                self._receive(bytes(_SCRATCH[:nbytes]))
        except FrameError as exc:
            self._fail(exc.code, exc.reason)

    def _receive(self, data: bytes) -> None:
        view = memoryview(data)
        if self._payload is not None:  # the rest of a large payload
            view = self._gather(view)
            if self._payload is not None or not view:
                return
        buf = self._buf
        if buf:
            buf += view
            view = memoryview(buf)
        try:
            pos = self._frames(view)
            left = bytes(view[pos:]) if pos < len(view) else b""
        finally:
            view.release()
        buf.clear()
        buf += left

    def _frames(self, view: memoryview) -> int:
        """Handle the whole frames at the start of `view` (until the application falls behind),
        and start gathering a large one that is not all there yet; return how much of `view`
        was used."""
        pos, end = 0, len(view)
        while end - pos >= 2 and not self.read_paused and not self.transport.is_closing():
            first, second = view[pos], view[pos + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = (view[pos + 2] << 8) | view[pos + 3], 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(view[pos + 2 : pos + 10], "big"), 10
            self._check(first, second, length)
            start = pos + head + 4
            if end - start >= length:
                mask = bytes(view[start - 4 : start])
                self._frame(first, apply_mask(view[start : start + length], mask))
                pos = start + length
            elif length > _SMALL and end >= start:
                self._first = first
                self._mask = bytes(view[start - 4 : start])
                if len(self._spare) < length <= _SPARE:
                    self._spare = bytearray(length)
                spare = self._spare if length <= len(self._spare) else bytearray(length)
                self._payload, self._got = memoryview(spare)[:length], 0
                self._gather(view[start:])
                return end
            else:
                break
        return pos

    def _gather(self, view: memoryview) -> memoryview:
        payload = self._payload
        assert payload is not None
        take = min(len(payload) - self._got, len(view))
        payload[self._got : self._got + take] = view[:take]
        self._got += take
        if self._got == len(payload):
            self._gathered()
        return view[take:]

    def _gathered(self) -> None:
        """A large payload is complete: unmasking copies it out, so its buffer is free again."""
        assert self._payload is not None
        payload, self._payload = self._payload, None
        self._frame(self._first, apply_mask(payload, self._mask))

    def _check(self, first: int, second: int, length: int) -> None:
        opcode = first & 0x0F
        if not second & 0x80:
            raise FrameError(1002, "client frames must be masked")
        if first & 0x70:
            raise FrameError(1002, "reserved bits set")
        if opcode in _CONTROL:
            if length > 125 or not first & 0x80:
                raise FrameError(1002, "control frames must be whole and at most 125 bytes")
        elif opcode not in _DATA:
            raise FrameError(1002, f"unknown opcode {opcode}")
        elif self._message_size + length > self.config.ws_max_size:
            raise FrameError(1009, f"message over {self.config.ws_max_size} bytes")

    def _frame(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        if opcode == Opcode.TEXT or opcode == Opcode.BINARY:
            if self._message:
                raise FrameError(1002, "a new message began inside a fragmented one")
            if first & 0x80:
                self._deliver(opcode, payload)
            else:
                self._message, self._message_type = [payload], opcode
                self._message_size = len(payload)
        elif opcode == Opcode.CONT:
            if not self._message:
                raise FrameError(1002, "continuation frame outside a fragmented message")
            self._message.append(payload)
            self._message_size += len(payload)
            if first & 0x80:
                whole, self._message, self._message_size = b"".join(self._message), [], 0
                self._deliver(self._message_type, whole)
        elif opcode == Opcode.PING:
            self._write(frame_header(Opcode.PONG, len(payload)) + payload)
        elif opcode == Opcode.PONG:
            self.handle_pong(Frame(Opcode.PONG, payload))
        else:
            self._closed_by_peer(payload)

    def _deliver(self, opcode: int, payload: bytes) -> None:
        if self.close_sent:
            return  # past `websocket.close`: reads stay on only to see the peer's close
        if opcode == Opcode.TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                raise FrameError(1007, "text frame is not valid UTF-8") from None
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
            self._queued += len(text)
        elif self.on_binary is not None and self.queue.empty() and self.on_binary(payload):
            return
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": payload})
            self._queued += len(payload)
        if not self.read_paused and (
            self._queued >= self.config.ws_max_size or self.queue.qsize() >= MAX_QUEUED
        ):
            self.read_paused = True
            self.transport.pause_reading()

    def _closed_by_peer(self, payload: bytes) -> None:
        try:
            close = Close.parse(payload)
        except (WsProtocolError, UnicodeDecodeError):  # a bad code, a short body, bad text
            raise FrameError(1002, "malformed close frame") from None
        if self.close_sent:  # the peer answered our close: the closing handshake is done
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            self.transport.close()
            return
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": close.code, "reason": close.reason}
        )
        self._write(frame_header(Opcode.CLOSE, len(payload)) + payload)  # the echo RFC 6455 asks
        self.transport.close()

    def _fail(self, code: int, reason: str) -> None:
        if self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if not self.close_sent:
            body = Close(code, reason).serialize()
            self._write(frame_header(Opcode.CLOSE, len(body)) + body)
            self.close_sent = True
        self.transport.close()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if message["type"] == "websocket.receive":
            self._queued -= len(message.get("bytes") or message.get("text") or "")
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            self.transport.resume_reading()
            if self._buf:  # frames that arrived after the pause
                self.data_received(b"")
        return message

    # -- writing -------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    async def send(self, message: Any) -> None:
        if not self._lean or message["type"] != "websocket.send":
            await super().send(message)
            if message["type"] == "websocket.accept" and self.handshake_complete:
                self._go_lean()
            return
        if not self.writable.is_set():
            await self.writable.wait()
        if self.disconnected or self.transport.is_closing():
            raise ClientDisconnected()  # the peer closed, or we failed the connection
        if self.close_sent:  # the application sends after its own close: uvicorn's error
            await super().send(message)
            return
        data = message.get("bytes")
        self._write_frame(data if data is not None else message["text"])

    def send_now(self, data: str | bytes | memoryview) -> bool:
        """Write a text (str) or binary (bytes) message at once, without waiting for a turn of
        the event loop, when nothing stands in the way: the connection is open and lean and
        the transport is taking writes. False: nothing was written; use the ASGI `send`,
        which waits for the transport. A caller that mixes the two keeps its own order (the
        agent connection sends directly only while its queue is empty)."""
        if (
            not self._lean
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self._write_frame(data)
        return True

    def _write_frame(self, data: str | bytes | memoryview) -> None:
        if isinstance(data, str):
            data = data.encode()
            header = frame_header(Opcode.TEXT, len(data))
        else:
            header = frame_header(Opcode.BINARY, len(data))
        if len(data) <= _SMALL:
            self.transport.write(header + data)
        else:
            self.transport.writelines((header, data))
