"""The peer hop's WebSocket client (control_plane/streaming/peer.py) against a real `websockets` server
and against broken servers on loopback: bytes arrive whole and in order, pings are answered,
close reasons come through, and a refused or broken handshake is a clear Unavailable."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import websockets
from websockets.asyncio.server import ServerConnection

from streamspace.control_plane.streaming import peer
from streamspace.errors import Unavailable

SIZES = [1, 125, 126, 65535, 65536, 300_000]  # every length encoding, payloads across reads


async def drain(link: peer.PeerProtocol) -> bytes:
    received = bytearray()
    while (data := await link.data.get()) is not None:
        received += data
        link.consumed(len(data))
    return bytes(received)


@asynccontextmanager
async def ws_server(handler: Callable[[ServerConnection], Awaitable[None]]) -> AsyncIterator[str]:
    async with websockets.serve(handler, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=0.2) as s:
        port = s.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/internal?token=t"


@asynccontextmanager
async def raw_server(
    reply: Callable[[bytes], bytes], *, then_drop: bool = True
) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        try:
            writer.write(reply(key))
            await writer.drain()
            if not then_drop:
                await asyncio.sleep(10)  # hold the link until the client ends it
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"


def accept(key: bytes) -> bytes:
    digest = hashlib.sha1(key + peer.GUID).digest()
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n\r\n"
    )


async def test_bytes_arrive_in_order_pings_are_answered_and_the_close_reason_comes_through() -> (
    None
):
    payloads = [bytes([i % 251]) * size for i, size in enumerate(SIZES)]
    heard: list[bytes] = []

    async def handler(ws: ServerConnection) -> None:
        heard.append(await ws.recv())  # type: ignore[arg-type]
        for payload in payloads:
            await ws.send(payload)
            await asyncio.sleep(0.06)  # let a keepalive ping cross between frames
        await ws.close(1000, "the session's VNC server closed the connection")

    async with ws_server(handler) as url:
        link = await peer.connect(url)
        await link.send(b"viewer input")
        received = await asyncio.wait_for(drain(link), 10)

    assert heard == [b"viewer input"]
    assert received == b"".join(payloads)
    assert link.close_reason == "the session's VNC server closed the connection"
    assert not link.lost


async def test_a_refused_upgrade_is_a_clear_error() -> None:
    async with raw_server(lambda _: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n") as url:
        with pytest.raises(
            Unavailable, match=re.escape("refused the stream: HTTP/1.1 403 Forbidden")
        ):
            await asyncio.wait_for(peer.connect(url), 5)


async def test_a_wrong_accept_key_is_refused() -> None:
    async with raw_server(lambda _: accept(b"someone else's key")) as url:
        with pytest.raises(Unavailable, match="wrong WebSocket accept key"):
            await asyncio.wait_for(peer.connect(url), 5)


async def test_frames_sent_with_the_handshake_are_not_lost() -> None:
    frame = struct.pack(">BB", 0x82, 5) + b"hello"
    async with raw_server(lambda key: accept(key) + frame, then_drop=False) as url:
        link = await asyncio.wait_for(peer.connect(url), 5)
        assert bytes(await asyncio.wait_for(link.data.get(), 5) or b"") == b"hello"
        link.close()


async def test_a_masked_or_oversized_frame_ends_the_link() -> None:
    masked = struct.pack(">BB", 0x82, 0x80 | 1) + b"\x00\x00\x00\x00x"
    huge = struct.pack(">BBQ", 0x82, 127, peer.MAX_FRAME + 1)
    for bad, reason in ((masked, "masked frame"), (huge, "frame of")):
        async with raw_server(lambda key, bad=bad: accept(key) + bad, then_drop=False) as url:
            link = await asyncio.wait_for(peer.connect(url), 5)
            assert await asyncio.wait_for(drain(link), 5) == b""
            assert reason in link.close_reason


async def test_a_dropped_connection_is_reported_as_lost() -> None:
    frame = struct.pack(">BB", 0x82, 2) + b"hi"
    async with raw_server(lambda key: accept(key) + frame) as url:
        link = await asyncio.wait_for(peer.connect(url), 5)
        assert await asyncio.wait_for(drain(link), 5) == b"hi"
    assert link.lost
    assert "lost the connection to the peer replica" in link.close_reason


# -- the library path (STREAMSPACE_LEAN_PEER_CLIENT=false) ------------------------------------


async def drain_library(link: peer.LibraryPeer) -> bytes:
    received = bytearray()
    while (data := await link.recv()) is not None:
        received += data
        link.consumed(len(data))
    return bytes(received)


async def test_the_library_client_carries_the_same_bytes_and_close_reason() -> None:
    payloads = [bytes([i % 251]) * size for i, size in enumerate(SIZES)]
    heard: list[bytes] = []

    async def handler(ws: ServerConnection) -> None:
        heard.append(await ws.recv())  # type: ignore[arg-type]
        for payload in payloads:
            await ws.send(payload)
        await ws.close(1000, "the session's VNC server closed the connection")

    async with ws_server(handler) as url:
        link = await peer.LibraryPeer.connect(url)
        assert await link.send(b"viewer input")
        received = await asyncio.wait_for(drain_library(link), 10)

    assert heard == [b"viewer input"]
    assert received == b"".join(payloads)
    assert link.close_reason == "the session's VNC server closed the connection"
    assert not link.lost
    assert not await link.send(b"after the end")


async def test_the_library_client_reports_a_refusal_and_a_drop_as_the_lean_one_does() -> None:
    async with raw_server(lambda _: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n") as url:
        with pytest.raises(Unavailable, match="refused the stream"):
            await asyncio.wait_for(peer.LibraryPeer.connect(url), 5)

    frame = struct.pack(">BB", 0x82, 2) + b"hi"
    async with raw_server(lambda key: accept(key) + frame) as url:
        link = await asyncio.wait_for(peer.LibraryPeer.connect(url), 5)
        assert await asyncio.wait_for(drain_library(link), 5) == b"hi"
    assert link.lost and "lost the connection to the peer replica" in link.close_reason
