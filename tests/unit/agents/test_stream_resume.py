"""The agent's end of a resumable stream, against a real TCP server standing in for the VNC
server (a test double) and a platform double that only opens connections to it: a stream
detached from its connection keeps the VNC connection, and a resume sends again exactly what
the viewer did not get, under the new stream id, then goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from tests.support.cluster import eventually

from streamspace.agents.platforms.base import Platform
from streamspace.agents.streams import AgentStreams
from streamspace.protocol.streams import unpack

SCREEN = bytes(range(251)) * 1200  # about 300 KiB the VNC server sends at once


@dataclass
class VncDouble:
    """A VNC server double: sends SCREEN on connect, keeps what it receives."""

    port: int = 0
    received: bytearray = field(default_factory=bytearray)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SCREEN)
        while data := await reader.read(65536):
            self.received += data
        self.closed.set()
        writer.close()


class PlatformDouble:
    """A platform double: every session's VNC server is the double's port."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def open_vnc(self, session_id: str, factory: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(factory, "127.0.0.1", self.port)
        return transport, protocol, False  # no VNC secret: bytes pass as they are


@dataclass
class Wire:
    """What the agent sent to the control plane."""

    controls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    data: dict[int, bytearray] = field(default_factory=dict)

    def control(self, type_: Any, payload: dict[str, Any]) -> None:
        self.controls.append((str(type_), json.loads(json.dumps(payload))))

    def frame(self, frame: bytes | memoryview) -> None:
        stream_id, data = unpack(bytes(frame))
        self.data.setdefault(stream_id, bytearray()).extend(data)

    def said(self, type_: str, stream_id: int) -> dict[str, Any] | None:
        for t, payload in self.controls:
            if t == type_ and payload.get("streamId") == stream_id:
                return payload
        return None


@asynccontextmanager
async def agent_streams(grace: float = 30.0) -> AsyncIterator[tuple[AgentStreams, Wire, VncDouble]]:
    vnc, wire = VncDouble(), Wire()
    server = await asyncio.start_server(vnc.serve, "127.0.0.1", 0)
    vnc.port = server.sockets[0].getsockname()[1]
    streams = AgentStreams(
        platform=cast(Platform, PlatformDouble(vnc.port)),
        send_control=wire.control,
        send_data=wire.frame,
        resume_grace=grace,
    )
    try:
        async with server:
            yield streams, wire, vnc
    finally:
        streams.close_all()
        await streams.closed()


def open_payload(stream_id: int, window: int, **extra: Any) -> dict[str, Any]:
    return {"streamId": stream_id, "sessionId": "s1", "window": window, "token": "tok", **extra}


async def test_a_resumed_stream_sends_again_what_the_viewer_missed_then_goes_on() -> None:
    async with agent_streams() as (streams, wire, vnc):
        streams.on_control("stream_open", open_payload(1, 1 << 20))
        await eventually(lambda: _true(wire.said("stream_opened", 1)), what="opened")
        assert wire.said("stream_opened", 1) == {
            "streamId": 1,
            "window": 1024 * 1024,
            "resumable": True,
            "received": 0,
        }
        await eventually(lambda: _true(len(wire.data.get(1, b"")) == len(SCREEN)), what="data")
        streams.on_data(1, b"keys")
        await eventually(lambda: _true(vnc.received == b"keys"), what="input written")

        streams.detach_all()  # the connection dropped; the viewer got only 10,000 bytes
        assert not vnc.closed.is_set()
        streams.on_control("stream_open", open_payload(7, 1 << 20, resumeFrom=10_000))
        opened = wire.said("stream_opened", 7)
        assert opened is not None and opened["resumable"] and opened["received"] == 4

        want = SCREEN[10_000:]
        await eventually(lambda: _true(len(wire.data.get(7, b"")) >= len(want)), what="replay")
        assert bytes(wire.data[7]) == want  # every missing byte once, in order, as stream 7
        streams.on_data(7, b"more")
        await eventually(lambda: _true(vnc.received == b"keysmore"), what="input after resume")


async def test_a_resume_is_refused_for_another_session_an_unknown_token_or_a_bad_offset() -> None:
    async with agent_streams() as (streams, wire, vnc):
        streams.on_control("stream_open", open_payload(1, 1 << 20))
        await eventually(lambda: _true(len(wire.data.get(1, b"")) == len(SCREEN)), what="data")
        streams.detach_all()
        for stream_id, payload in [
            (2, {**open_payload(2, 1 << 20, resumeFrom=0), "sessionId": "other"}),
            (3, {**open_payload(3, 1 << 20, resumeFrom=0), "token": "unknown"}),
        ]:
            streams.on_control("stream_open", payload)
            closed = wire.said("stream_close", stream_id)
            assert closed is not None and closed["code"] == "stream_not_resumable", closed
        assert not vnc.closed.is_set()  # a wrong guess does not end the real one
        streams.on_control("stream_open", open_payload(4, 1 << 20, resumeFrom=len(SCREEN) + 1))
        closed = wire.said("stream_close", 4)
        assert closed is not None and "outside" in closed["reason"]
        await asyncio.wait_for(vnc.closed.wait(), 5)  # that one was the right stream: ended


async def test_a_detached_stream_not_resumed_within_the_grace_ends() -> None:
    async with agent_streams(grace=0.2) as (streams, wire, vnc):
        streams.on_control("stream_open", open_payload(1, 1 << 20))
        await eventually(lambda: _true(wire.said("stream_opened", 1)), what="opened")
        await eventually(lambda: _true(len(wire.data.get(1, b"")) > 0), what="data")
        streams.detach_all()
        await asyncio.wait_for(vnc.closed.wait(), 5)
        streams.on_control("stream_open", open_payload(2, 1 << 20, resumeFrom=0))
        closed = wire.said("stream_close", 2)
        assert closed is not None and closed["code"] == "stream_not_resumable"
        assert wire.said("stream_close", 1) is None  # nobody to tell on a dead connection


async def test_without_a_token_a_stream_ends_with_its_connection() -> None:
    async with agent_streams() as (streams, wire, vnc):
        streams.on_control("stream_open", {"streamId": 1, "sessionId": "s1", "window": 1 << 20})
        await eventually(lambda: _true(wire.said("stream_opened", 1)), what="opened")
        assert "resumable" not in (wire.said("stream_opened", 1) or {})
        streams.detach_all()
        await asyncio.wait_for(vnc.closed.wait(), 5)


async def _true(value: object) -> bool:
    return bool(value)


async def test_a_stream_still_attached_or_kept_by_its_replica_can_be_resumed_elsewhere() -> None:
    """The link between the viewer's replica and the agent's broke, not the agent's
    connection: the agent's replica asks it to keep the stream (`keep`), or the resume comes
    first; either way the viewer's replica takes it over under a new id."""
    async with agent_streams() as (streams, wire, vnc):
        streams.on_control("stream_open", open_payload(1, 1 << 20))
        await eventually(lambda: _true(len(wire.data.get(1, b"")) == len(SCREEN)), what="data")
        streams.on_control("stream_open", open_payload(2, 1 << 20, resumeFrom=len(SCREEN) - 5))
        await eventually(lambda: _true(bytes(wire.data.get(2, b"")) == SCREEN[-5:]), what="tail")
        streams.on_control("stream_close", {"streamId": 2, "reason": "link lost", "keep": True})
        assert not vnc.closed.is_set()
        streams.on_control("stream_open", open_payload(3, 1 << 20, resumeFrom=len(SCREEN)))
        opened = wire.said("stream_opened", 3)
        assert opened is not None and opened["resumable"]
        streams.on_control("stream_close", {"streamId": 3, "reason": "viewer left"})
        await asyncio.wait_for(vnc.closed.wait(), 5)  # a plain close ends it


async def test_viewer_input_is_acknowledged_every_16_kib() -> None:
    async with agent_streams() as (streams, wire, vnc):
        streams.on_control("stream_open", open_payload(1, 1 << 20))
        await eventually(lambda: _true(wire.said("stream_opened", 1)), what="opened")
        for _ in range(3000):  # 30,000 bytes of 10-byte pointer events
            streams.on_data(1, b"p" * 10)
        acks = [p["bytes"] for t, p in wire.controls if t == "stream_ack"]
        assert acks == [16 * 1024 + 6]  # the first message at or past 16 KiB
        await eventually(lambda: _true(len(vnc.received) == 30_000), what="input written")
