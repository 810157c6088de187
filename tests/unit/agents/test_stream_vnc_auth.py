"""A stream to a session whose VNC server requires the session's secret: the agent logs in
(through the memory platform's real `open_vnc`), the viewer sees a server that needs no
password, its ClientInit reaches the server and the ServerInit comes back; a resumed stream
does not greet again; a wrong secret ends the stream with a clear reason. The VNC server is
a loopback test double that checks the DES answer as a real one does."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tests.support.cluster import eventually
from tests.unit.agents.test_stream_resume import Wire, open_payload

from streamspace.agents.platforms.base import SessionSpec
from streamspace.agents.platforms.memory import MemoryKnobs, MemoryPlatform
from streamspace.agents.rfb_auth import vnc_des
from streamspace.agents.streams import AgentStreams

SECRET = "Zq3-x_9a"
SERVER_INIT = struct.pack(">HH16sI", 1280, 800, bytes(16), 4) + b"test"
U32 = struct.Struct(">I")


@dataclass
class AuthVncDouble:
    """An RFB 3.8 server offering only VNC Authentication; after login it answers ClientInit
    with SERVER_INIT and keeps what else it receives."""

    secret: str
    logins: int = 0
    received: bytearray = field(default_factory=bytearray)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"RFB 003.008\n")
            assert await reader.readexactly(12) == b"RFB 003.008\n"
            writer.write(bytes([1, 2]))
            assert await reader.readexactly(1) == b"\x02"
            challenge = os.urandom(16)
            writer.write(challenge)
            if await reader.readexactly(16) != vnc_des(
                password=self.secret.encode(), challenge=challenge
            ):
                writer.write(U32.pack(1) + U32.pack(15) + b"password failed")
                return
            self.logins += 1
            writer.write(U32.pack(0))
            await reader.readexactly(1)  # ClientInit
            writer.write(SERVER_INIT)
            while data := await reader.read(65536):
                self.received += data
        finally:
            writer.close()


@asynccontextmanager
async def streams_to(
    *, server_secret: str, agent_secret: str
) -> AsyncIterator[tuple[AgentStreams, Wire, AuthVncDouble]]:
    vnc, wire = AuthVncDouble(server_secret), Wire()
    server = await asyncio.start_server(vnc.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    platform = MemoryPlatform(knobs=MemoryKnobs(vnc=f"127.0.0.1:{port}", vnc_secret=agent_secret))
    spec = SessionSpec(session_id="s1", user="u", template="t", image="i")
    await platform.start(spec)
    streams = AgentStreams(platform=platform, send_control=wire.control, send_data=wire.frame)
    try:
        async with server:
            yield streams, wire, vnc
    finally:
        streams.close_all()
        await streams.closed()


async def _received(wire: Wire, stream_id: int, want: bytes) -> bool:
    return bytes(wire.data.get(stream_id, b"")) == want


async def test_the_viewer_gets_a_passwordless_greeting_and_then_the_servers_init() -> None:
    async with streams_to(server_secret=SECRET, agent_secret=SECRET) as (streams, wire, vnc):
        streams.on_control("stream_open", open_payload(1, 1 << 20))
        await eventually(lambda: _received(wire, 1, b"RFB 003.008\n"), what="greeting")
        streams.on_data(1, b"RFB 003.008\n")
        await eventually(lambda: _received(wire, 1, b"RFB 003.008\n\x01\x01"), what="types")
        streams.on_data(1, b"\x01")  # None
        streams.on_data(1, b"\x01")  # ClientInit: goes to the server, which answers ServerInit
        want = b"RFB 003.008\n\x01\x01" + U32.pack(0) + SERVER_INIT
        await eventually(lambda: _received(wire, 1, want), what="ServerInit")

        streams.detach_all()
        streams.on_control("stream_open", open_payload(2, 1 << 20, resumeFrom=len(want)))
        opened = wire.said("stream_opened", 2)
        assert opened is not None and opened["received"] == 14  # every viewer byte counted
        streams.on_data(2, b"\x03keys")  # an update request: straight through, no handshake
        await eventually(lambda: _true(vnc.received == b"\x03keys"), what="input after resume")
        assert vnc.logins == 1 and 2 not in wire.data  # no second login, no second greeting


async def test_a_3_3_viewer_is_greeted_as_3_3() -> None:
    async with streams_to(server_secret=SECRET, agent_secret=SECRET) as (streams, wire, _):
        streams.on_control("stream_open", open_payload(1, 1 << 20))
        streams.on_data(1, b"RFB 003.003\n\x01")
        want = b"RFB 003.008\n" + U32.pack(1) + SERVER_INIT  # no choice, no SecurityResult
        await eventually(lambda: _received(wire, 1, want), what="ServerInit")


async def test_a_wrong_secret_ends_the_stream_with_a_clear_reason() -> None:
    async with streams_to(server_secret=SECRET, agent_secret="wrong!!!") as (streams, wire, _):
        streams.on_control("stream_open", open_payload(1, 1 << 20))
        await eventually(lambda: _true(wire.said("stream_close", 1)), what="closed")
        closed = wire.said("stream_close", 1) or {}
        assert closed["reason"] == (
            "cannot reach the session's VNC server: the session's VNC server rejected "
            "the agent's VNC password: password failed"
        )
        assert wire.said("stream_opened", 1) is None and 1 not in wire.data


async def _true(value: object) -> bool:
    return bool(value)


def test_the_memory_platform_takes_its_stand_ins_secret_from_its_knobs() -> None:
    knobs = MemoryKnobs.parse("vnc=127.0.0.1:5999,vnc_secret=abc")
    assert (knobs.vnc, knobs.vnc_secret) == ("127.0.0.1:5999", "abc")
    assert "abc" not in repr(knobs)
    assert MemoryKnobs.parse("vnc=127.0.0.1:5999").vnc_secret is None
