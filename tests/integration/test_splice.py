"""The browser's replica splicing a peer replica's frames into the browser's socket
(control_plane/streaming/splice.py), on real sockets: a uvicorn server with our WebSocket protocol plays
the browser's replica, a `websockets` server (or a broken raw one) the replica holding the
agent, a `websockets` client the browser. Bytes arrive whole and in order with pings crossing
both ways, a slow browser holds the peer back instead of filling memory, and a peer that dies
mid-frame still leaves the browser a well-formed stream and a close reason."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.server import ServerConnection

from streamspace.control_plane.asgi.wsserver import FRAMES_EXTENSION, LeanWebSocketProtocol
from streamspace.control_plane.streaming import peer, splice
from streamspace.control_plane.streaming.streams import relay
from streamspace.control_plane.ws.vnc import BrowserViewer
from tests.support.cluster import eventually
from tests.support.lean import serve
from tests.support.sockets import tcp_buffer_max, unacknowledged

pytestmark = pytest.mark.skipif(not hasattr(os, "splice"), reason="splice(2) is Linux-only")
SIZES = [1, 125, 126, 65535, 65536, 262148, 300_000]


async def view(ws: WebSocket) -> None:
    """The browser's replica: splice from the peer at app.state.peer_url, as ws/vnc.py does."""
    await ws.accept()
    frames = ws.scope["extensions"][FRAMES_EXTENSION]
    assert splice.usable(frames)
    ws.app.state.viewers.append(frames)
    link = await splice.SplicedPeer.connect(peer.Hello.to(ws.app.state.peer_url), frames)
    try:
        reason = await relay(BrowserViewer(ws), link)
    finally:
        link.close()
    await ws.close(1011 if link.lost else 1000, reason[:120])


@asynccontextmanager
async def browsers_replica(
    peer_url: str, *, viewers: list[LeanWebSocketProtocol] | None = None
) -> AsyncIterator[str]:
    """Yields the URL the browser opens; `viewers` gets each browser's socket as it comes."""
    app = Starlette(routes=[WebSocketRoute("/view", view)])
    app.state.peer_url = peer_url
    app.state.viewers = [] if viewers is None else viewers
    async with serve(
        app,
        ws_per_message_deflate=False,
        ws_ping_interval=0.05,  # uvicorn's own pings must never land inside a spliced frame
    ) as port:
        yield f"ws://127.0.0.1:{port}/view"


@asynccontextmanager
async def holding_replica(
    handler: Callable[[ServerConnection], Awaitable[None]],
) -> AsyncIterator[str]:
    async with websockets.serve(
        handler, "127.0.0.1", 0, compression=None, ping_interval=0.05, max_size=None
    ) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/internal?token=t"


class RawKeepingBrowser(websockets.ClientConnection):
    """A browser that also keeps the bytes its socket delivered, to see part of a frame
    arrive before the whole message does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw = bytearray()

    def data_received(self, data: bytes) -> None:
        self.raw += data
        super().data_received(data)


async def read_all(browser: websockets.ClientConnection) -> bytes:
    received = bytearray()
    with contextlib.suppress(websockets.ConnectionClosedError):  # closed with an error code
        async for message in browser:
            assert isinstance(message, bytes)
            received += message
    return bytes(received)


async def test_bytes_arrive_whole_and_in_order_with_pings_crossing_both_ways() -> None:
    payloads = [os.urandom(size) for size in SIZES] * 3
    heard: list[bytes] = []

    async def handler(ws: ServerConnection) -> None:
        heard.append(await ws.recv())  # type: ignore[arg-type]
        for payload in payloads:
            await ws.send(payload)
            await asyncio.sleep(0.02)  # pings cross between (and during) frames
        await ws.close(1000, "the session's VNC server closed the connection")

    async with (
        holding_replica(handler) as peer_url,
        browsers_replica(peer_url) as url,
        websockets.connect(url, compression=None, max_size=None, ping_interval=0.02) as browser,
    ):
        await browser.send(b"viewer input")
        received = await asyncio.wait_for(read_all(browser), 30)
    assert heard == [b"viewer input"]
    assert received == b"".join(payloads)
    assert browser.close_code == 1000
    assert browser.close_reason == "the session's VNC server closed the connection"


BROWSER_QUEUE = 4  # frames the browser's client takes off its socket before it stops reading
REPLICA_HOLDS_AT_MOST = splice.PIPE_SIZE + 4096  # one pipe's worth, a header, a few pings


async def test_a_slow_browser_holds_the_peer_back_and_loses_nothing() -> None:
    """The browser reads nothing until the holding replica cannot send any more. The peer has
    more to send than the four sockets between (the peer's, the browser's replica's two, the
    browser's) could hold at the kernel's largest buffers, with every process's bounded queue
    on top; so it is held back only if the browser's replica stops reading it instead of
    buffering. The browser's replica never holds more than a pipe's worth, and once the
    browser reads, every frame arrives, in order."""
    chunk = 256 << 10
    between = 2 * tcp_buffer_max("wmem") + 2 * tcp_buffer_max("rmem")
    in_processes = (BROWSER_QUEUE + 2) * chunk + 2 * chunk + 2 * REPLICA_HOLDS_AT_MOST
    capacity = between + in_processes
    count = capacity // chunk + 4
    sent = 0
    peers: list[ServerConnection] = []
    viewers: list[LeanWebSocketProtocol] = []
    most_held = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal sent
        peers.append(ws)
        for i in range(count):
            await ws.send(struct.pack(">I", i) + bytes(chunk - 4))
            sent += 1
        await ws.close(1000, "done")

    def replica_holds() -> None:
        nonlocal most_held
        for viewer in viewers:
            most_held = max(most_held, viewer.transport.get_write_buffer_size())

    last: tuple[int, int, int] | None = None

    async def peer_held_back() -> bool:
        """The peer's send waits (its transport holds bytes its socket will not take), the
        other end leaves them unacknowledged, and nothing moved since the last poll, though
        the event loop ran the replica's readers in between: it stopped reading the peer."""
        nonlocal last
        if sent == count:
            pytest.fail("the peer sent everything while the browser read nothing")
        replica_holds()
        if not peers:
            return False
        now = (
            sent,
            peers[0].transport.get_write_buffer_size(),
            unacknowledged(peers[0].transport),
        )
        held, last = now == last and now[1] > 0 and now[2] > 0, now
        return held

    numbers: list[int] = []
    async with (
        holding_replica(handler) as peer_url,
        browsers_replica(peer_url, viewers=viewers) as url,
        websockets.connect(
            url, compression=None, max_size=None, max_queue=BROWSER_QUEUE
        ) as browser,
    ):
        await eventually(peer_held_back, timeout=60, interval=0.02, what="the peer held back")
        held_back_at = sent
        async for message in browser:
            replica_holds()
            assert isinstance(message, bytes) and len(message) == chunk
            numbers.append(struct.unpack_from(">I", message)[0])
    assert held_back_at * chunk <= capacity, (held_back_at, count)
    assert most_held <= REPLICA_HOLDS_AT_MOST
    assert numbers == list(range(count))
    assert browser.close_code == 1000


def _accept(request: bytes) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    digest = base64.b64encode(hashlib.sha1(key + peer.GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + digest + b"\r\n\r\n"
    )


@asynccontextmanager
async def raw_holding_replica(after_handshake: bytes, *, drop: bool = True) -> AsyncIterator[str]:
    """Answers the upgrade, writes `after_handshake`, then drops the connection (or, with
    `drop` false, holds it until the other side closes it)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        writer.write(_accept(request) + after_handshake)
        await writer.drain()
        if drop:
            # Only what the other end has not taken is lost to the reset; what it has, it reads.
            while unacknowledged(writer.transport):  # noqa: ASYNC110 - no event for an ACK
                await asyncio.sleep(0.01)
            writer.transport.abort()
            return
        with contextlib.suppress(OSError):
            while await reader.read(1 << 16):
                pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/internal"


async def test_a_peer_dying_mid_frame_leaves_a_well_formed_stream_and_a_reason() -> None:
    whole = struct.pack(">BBH", 0x82, 126, 1000) + b"w" * 1000
    cut = struct.pack(">BBQ", 0x82, 127, 200_000) + b"c" * 50_000  # 150,000 bytes never come
    async with (
        raw_holding_replica(whole + cut) as peer_url,
        browsers_replica(peer_url) as url,
        websockets.connect(url, compression=None, max_size=None) as browser,
    ):
        received = await asyncio.wait_for(read_all(browser), 10)
    assert received[:1050] == b"w" * 1000 + b"c" * 50
    assert len(received) == 1000 + 200_000  # the cut frame padded to its announced length
    assert browser.close_code == 1011
    assert "lost the connection to the peer replica" in (browser.close_reason or "")


async def test_a_masked_frame_from_the_peer_ends_the_stream_with_a_reason() -> None:
    masked = struct.pack(">BB", 0x82, 0x80 | 1) + b"\x00\x00\x00\x00x"
    async with (
        raw_holding_replica(masked) as peer_url,
        browsers_replica(peer_url) as url,
        websockets.connect(url, compression=None) as browser,
    ):
        assert await asyncio.wait_for(read_all(browser), 10) == b""
    assert "masked frame" in (browser.close_reason or "")


async def test_a_replica_shutting_down_mid_frame_still_closes_cleanly_with_1012() -> None:
    """A rolling restart of the browser's replica while it is inside a frame (half of it has
    arrived from the peer and gone on to the browser): the frame is completed before
    uvicorn's 1012 close, so the browser sees whole frames and then the close code, not a
    close frame inside a frame."""
    half = struct.pack(">BBQ", 0x82, 127, 200_000) + b"h" * 100_000
    async with raw_holding_replica(half, drop=False) as peer_url:
        replica = browsers_replica(peer_url)
        url = await replica.__aenter__()
        browser = await websockets.connect(
            url, compression=None, max_size=None, create_connection=RawKeepingBrowser
        )
        assert isinstance(browser, RawKeepingBrowser)

        async def first_half_through() -> bool:  # the rest never comes
            return half in browser.raw

        await eventually(first_half_through, interval=0.02, what="the first half in the browser")
        restart = asyncio.create_task(replica.__aexit__(None, None, None))
        received = await asyncio.wait_for(read_all(browser), 30)
        await asyncio.wait_for(restart, 30)
    assert browser.close_code == 1012
    assert received == b"h" * 100_000 + bytes(100_000)  # the frame, padded to its length
