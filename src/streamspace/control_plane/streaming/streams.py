"""Control-plane side of VNC data streams to agents, and the relay to a viewer socket.

One `AgentStream` per viewer: its own credit window both ways, so a slow viewer stalls only
itself. Browser-facing endpoints live in ws/vnc.py; this module owns no HTTP.

The agent's bytes reach the viewer's socket in the same turn of the event loop that read them
(`Passthrough`, with wsserver's `send_now` as its sink) while nothing of the stream waits
before them and that socket takes writes; otherwise they queue for the relay task, which then keeps the order
until the queue is empty. Every chunk in the direct path saves two task switches and a queue
round trip on the busiest hop of a stream."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from streamspace.errors import Unavailable
from streamspace.protocol import encode, make
from streamspace.protocol.envelope import MessageType
from streamspace.protocol.streams import WINDOW, Credit, Receipts, chunks, pack, race

log = logging.getLogger(__name__)
Data = bytes | memoryview  # stream bytes; views of the agent's frames are passed on uncopied
OPEN_TIMEOUT = 20.0


def _new_id() -> int:
    """Random, not counted from 1: an agent that moves from replica to replica never meets a
    new stream under an id it used for another one."""
    return secrets.randbits(31) | 1


@dataclass(eq=False)
class Passthrough:
    """The order-keeping rule of the direct path: a chunk goes straight to the viewer's socket
    (`sink`) only while no earlier chunk waits for the relay task (`backlog` bytes, queued or
    in the task's hands until written)."""

    sink: Callable[[Data], bool] | None = None
    backlog: int = 0

    def offer(self, data: Data) -> bool:
        """True: written to the viewer; False: the caller queues it (now counted)."""
        if not self.backlog and self.sink is not None and self.sink(data):
            return True
        self.backlog += len(data)
        return False

    def written(self, n: int) -> None:
        self.backlog -= n


class Connection(Protocol):
    agent_id: str
    epoch: int

    def send(self, text: str | bytes) -> bool: ...


@dataclass(eq=False)
class AgentStream:
    conn: Connection
    session_id: str
    id: int = field(default_factory=_new_id)
    token: str = ""  # set: the agent is asked to keep the stream across a reconnect
    inbound: asyncio.Queue[Data | None] = field(default_factory=asyncio.Queue)
    credit: Credit = field(default_factory=lambda: Credit(0))
    receipts: Receipts = field(default_factory=lambda: Receipts(WINDOW))
    opened: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    close_reason: str = ""
    close_code: str = ""  # the agent's error code for a refused stream
    direct: Passthrough = field(default_factory=Passthrough)
    resumable: bool = False  # the agent keeps it across a reconnect (its stream_opened says)
    input_received: int = 0  # viewer bytes the agent had when it opened (resumed) the stream
    lost: bool = False  # ended because the agent's connection went away
    on_ack: Callable[[int], None] | None = None  # the agent's running total of viewer bytes

    def control(self, type_: MessageType, payload: dict[str, object]) -> None:
        body = {"streamId": self.id, **payload}
        self.conn.send(encode(make(type_, body, epoch=self.conn.epoch)))

    async def send(self, data: bytes) -> bool:
        """Forward viewer bytes to the agent within the agent's credit."""
        for chunk in chunks(data):
            if not await self.credit.take(len(chunk)):
                return False
            if not self.conn.send(pack(self.id, chunk)):
                return False
        return True

    async def recv(self) -> Data | None:
        return await self.inbound.get()

    def deliver(self, data: Data) -> None:
        """Bytes from the agent: to the viewer's socket now if nothing waits before them, else
        to the relay task's queue."""
        self.receipts.received(len(data))
        if self.direct.offer(data):
            self._grant(len(data))
        else:
            self.inbound.put_nowait(data)

    def consumed(self, n: int) -> None:
        """The relay task wrote `n` queued bytes to the viewer."""
        self.direct.written(n)
        self._grant(n)

    def _grant(self, n: int) -> None:
        grant = self.receipts.consumed(n)
        if grant:
            self.control("stream_credit", {"bytes": grant})

    def ack(self, delivered: int) -> None:
        """Tell the agent the viewer has its first `delivered` bytes (resumable streams)."""
        if self.resumable:
            self.control("stream_ack", {"bytes": delivered})

    def ended(self, reason: str) -> None:
        if not self.close_reason:
            self.close_reason = reason or "stream closed"
        self.credit.close()
        self.inbound.put_nowait(None)
        if not self.opened.done():
            code = self.close_code or "stream_failed"
            self.opened.set_exception(Unavailable(self.close_reason, code=code))


class StreamTable:
    """The streams of one agent connection; fed by the gateway's read loop."""

    def __init__(self) -> None:
        self.streams: dict[int, AgentStream] = {}

    async def open(
        self, conn: Connection, session_id: str, *, token: str = "", resume_from: int | None = None
    ) -> AgentStream:
        """Open a stream; with a `token` the agent may keep it across a reconnect, and with
        `resume_from` too this resumes the one it kept (Unavailable `stream_not_resumable`
        when it has none)."""
        stream = AgentStream(conn=conn, session_id=session_id, token=token)
        while stream.id in self.streams:
            stream.id = _new_id()
        self.streams[stream.id] = stream
        payload: dict[str, object] = {"sessionId": session_id, "window": WINDOW}
        if token:
            payload["token"] = token
            if resume_from is not None:
                payload["resumeFrom"] = resume_from
        stream.control("stream_open", payload)
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                await stream.opened
        except TimeoutError as exc:
            self.close(stream, "agent did not open the stream in time", notify=True)
            raise Unavailable(
                "the agent did not open the VNC stream in time", code="stream_timeout"
            ) from exc
        except Unavailable:
            self.streams.pop(stream.id, None)
            raise
        return stream

    def on_data(self, stream_id: int, data: Data) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return  # late bytes for a stream already closed
        stream.deliver(data)

    def on_control(self, type_: str, payload: dict[str, object]) -> None:
        stream = self.streams.get(int(str(payload.get("streamId", 0)) or 0))
        if stream is None:
            return
        if type_ == "stream_opened":
            stream.resumable = bool(stream.token) and payload.get("resumable") is True
            stream.input_received = _count(payload.get("received"))
            stream.credit.grant(int(str(payload.get("window", WINDOW))))
            if not stream.opened.done():
                stream.opened.set_result(None)
        elif type_ == "stream_credit":
            stream.credit.grant(int(str(payload.get("bytes", 0))))
        elif type_ == "stream_ack":
            if stream.on_ack is not None:
                stream.on_ack(_count(payload.get("bytes")))
        elif type_ == "stream_close":
            self.streams.pop(stream.id, None)
            stream.close_code = str(payload.get("code", ""))
            stream.ended(str(payload.get("reason", "closed by the agent")))

    def close(self, stream: AgentStream, reason: str, *, notify: bool, keep: bool = False) -> None:
        """End a stream here; `notify` tells the agent, and `keep` asks it to keep a resumable
        stream for a resume from elsewhere rather than end it."""
        if self.streams.pop(stream.id, None) is not None and notify:
            payload: dict[str, object] = {"reason": reason}
            if keep and stream.resumable:
                payload["keep"] = True
            stream.control("stream_close", payload)
        stream.ended(reason)

    def close_all(self, reason: str) -> None:
        """The agent's connection is gone: every stream ends, marked lost (its viewer's
        replica may resume a resumable one wherever the agent reconnects)."""
        for stream in list(self.streams.values()):
            stream.lost = True
            self.close(stream, reason, notify=False)


def _count(value: object) -> int:
    """A byte count from a payload (0 when missing or malformed)."""
    try:
        return max(int(str(value)), 0)
    except ValueError:
        return 0


class Viewer(Protocol):
    """A viewer-side socket (browser or peer replica), reduced to what the relay needs."""

    async def receive_bytes(self) -> bytes | None: ...
    async def send_bytes(self, data: Data) -> None: ...
    def send_now(self, data: Data) -> bool: ...


class Source(Protocol):
    """The agent's side of a relay: an `AgentStream`, or the peer link to the replica holding
    the agent (control_plane/streaming/peer.py)."""

    close_reason: str

    async def recv(self) -> Data | None: ...
    def consumed(self, n: int) -> None: ...
    async def send(self, data: bytes) -> bool: ...


async def relay(
    viewer: Viewer, stream: Source, *, on_input: Callable[[int], None] | None = None
) -> str:
    """Pump bytes both ways until either side ends; returns the reason."""

    async def to_viewer() -> str:
        while (chunk := await stream.recv()) is not None:
            await viewer.send_bytes(chunk)
            stream.consumed(len(chunk))
        return stream.close_reason or "stream closed"

    async def to_agent() -> str:
        while (data := await viewer.receive_bytes()) is not None:
            if on_input is not None:
                on_input(len(data))
            if not await stream.send(data):
                return stream.close_reason or "stream closed"
        return "viewer disconnected"

    try:
        return await race(to_viewer(), to_agent())
    except Exception as exc:  # the viewer socket died mid-send: end this stream only
        return f"relay error: {exc}"
