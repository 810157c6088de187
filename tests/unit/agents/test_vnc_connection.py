"""The agent's TCP connection to a session's VNC server (agents/streams.py): its bytes come
out as stream frames, in order and complete; many small writes that arrive while the pump is
busy leave as one frame; an idle pump gets each read at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streamspace.agents.streams import VncConnection
from streamspace.protocol.streams import CHUNK, HEADER, unpack


@pytest.fixture
async def server() -> AsyncIterator[tuple[asyncio.Queue[asyncio.StreamWriter], int]]:
    """A stand-in VNC server: each accepted connection's writer goes on the queue."""
    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def on_connect(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(writer)

    srv = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    yield accepted, srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()


async def connect(port: int) -> VncConnection:
    loop = asyncio.get_running_loop()
    _, vnc = await loop.create_connection(lambda: VncConnection(7), "127.0.0.1", port)
    return vnc


async def test_small_writes_meanwhile_leave_as_one_frame(
    server: tuple[asyncio.Queue[asyncio.StreamWriter], int],
) -> None:
    accepted, port = server
    vnc = await connect(port)
    writer = await accepted.get()
    for i in range(50):  # the pump is busy elsewhere: 50 small writes arrive
        writer.write(bytes([i]) * 100)
        await writer.drain()
        await asyncio.sleep(0.002)
    frame = await vnc.next_frame()
    assert frame is not None
    stream_id, data = unpack(bytes(frame))
    assert stream_id == 7
    assert bytes(data) == b"".join(bytes([i]) * 100 for i in range(50))

    writer.write(b"x" * 10)  # an idle pump: the next read is a frame of its own, at once
    frame = await asyncio.wait_for(vnc.next_frame(), 5)
    assert frame is not None and bytes(frame)[HEADER.size :] == b"x" * 10
    writer.close()
    assert await asyncio.wait_for(vnc.next_frame(), 5) is None
    vnc.close()


async def test_bulk_arrives_whole_in_chunks_then_the_end(
    server: tuple[asyncio.Queue[asyncio.StreamWriter], int],
) -> None:
    accepted, port = server
    vnc = await connect(port)
    writer = await accepted.get()
    sent = bytes(range(256)) * (3 * CHUNK // 256 + 77)
    writer.write(sent)
    writer.write_eof()  # the server's last bytes, then its end: nothing read may be lost
    got = bytearray()
    while (frame := await asyncio.wait_for(vnc.next_frame(), 5)) is not None:
        assert len(frame) <= HEADER.size + CHUNK
        got += bytes(frame)[HEADER.size :]
        vnc.consumed(len(frame) - HEADER.size)
    assert bytes(got) == sent
    writer.close()
    vnc.close()
