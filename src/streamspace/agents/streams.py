"""Agent side of VNC data streams: for each `stream_open` the agent opens a TCP connection to
the session's VNC port on the container network and pumps bytes both ways under credit flow
control (protocol/streams.py). A slow viewer only stalls its own stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamspace.agents.platforms.base import Platform
from streamspace.errors import StreamSpaceError
from streamspace.protocol.streams import CHUNK, WINDOW, Credit, Receipts, pack, race

log = logging.getLogger(__name__)
SendControl = Callable[[Any, dict[str, Any]], None]


@dataclass(eq=False)
class _Stream:
    id: int
    session_id: str
    credit: Credit
    receipts: Receipts = field(default_factory=lambda: Receipts(WINDOW))
    inbound: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class AgentStreams:
    def __init__(
        self, *, platform: Platform, send_control: SendControl, send_data: Callable[[bytes], None]
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

    def on_data(self, stream_id: int, data: bytes) -> None:
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
            reader, writer = await self._platform.open_vnc(stream.session_id)
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
        reason = await self._pump(stream, reader, writer)
        if stream.id in self._streams:
            self._control("stream_close", {"streamId": stream.id, "reason": reason})
        self._end(stream)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _pump(
        self, stream: _Stream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str:
        async def from_vnc() -> str:
            while data := await reader.read(CHUNK):
                if not await stream.credit.take(len(data)):
                    return "stream closed"
                self._data(pack(stream.id, data))
            return "the session's VNC server closed the connection"

        async def to_vnc() -> str:
            while (data := await stream.inbound.get()) is not None:
                writer.write(data)
                await writer.drain()
                if grant := stream.receipts.consumed(len(data)):
                    self._control("stream_credit", {"streamId": stream.id, "bytes": grant})
            return "viewer closed the stream"

        try:
            return await race(from_vnc(), to_vnc())
        except (OSError, StreamSpaceError) as exc:
            return f"stream error: {exc}"
