"""The control plane's WebSocket frames (control_plane/asgi/wsserver.py) on a real uvicorn server:
what clients send arrives whole and in order however TCP splits or joins it, and every frame
RFC 6455 forbids is refused with the close code it names and a reason."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.frames import Close

from streamspace.control_plane.asgi.wsserver import (
    FRAMES_EXTENSION,
    MAX_QUEUED,
    LeanWebSocketProtocol,
)
from tests.support.cluster import eventually
from tests.support.lean import serve
from tests.support.sockets import tcp_buffer_max

MAX_SIZE = 1 << 20


async def echo(ws: WebSocket) -> None:
    """Echoes every message; `close <code>` closes with that code; `stall <n>` reads nothing
    until n messages wait or the server stops reading the socket, then says how many were
    waiting (and `paused` if it stopped reading), then echoes on; `hook` has binary messages
    echoed by the server's `on_binary` hook (prefixed `hook:`), except `refuse`."""
    await ws.accept()
    while True:
        message: Any = await ws.receive()
        if message["type"] == "websocket.disconnect":
            ws.app.state.disconnects.append((message["code"], message.get("reason", "")))
            return
        text = message.get("text")
        if text is not None and text.startswith("close "):
            await ws.close(int(text.split()[1]), "asked to")
            return
        if text is not None and text.startswith("direct "):
            await send_directly_then_wait(ws, int(text.split()[1]))
        elif text == "hook":
            hooked = ws.scope["extensions"][FRAMES_EXTENSION]
            hooked.on_binary = functools.partial(echo_now, hooked)
            await ws.send_text("hooked")
        elif text is not None and text.startswith("stall "):
            await ws.send_text(await stall(ws, int(text.split()[1])))
        elif text is not None:
            await ws.send_text(text)
        else:
            await ws.send_bytes(message["bytes"])


async def stall(ws: WebSocket, messages: int) -> str:
    protocol = ws._receive.__self__  # type: ignore[attr-defined]  # the uvicorn protocol
    async with asyncio.timeout(20):
        while protocol.queue.qsize() < messages and not protocol.read_paused:  # noqa: ASYNC110 - no event for either
            await asyncio.sleep(0.01)
    return f"waiting {protocol.queue.qsize()}" + (" paused" if protocol.read_paused else "")


def echo_now(frames: LeanWebSocketProtocol, payload: bytes) -> bool:
    return payload != b"refuse" and frames.send_now(b"hook:" + payload)


async def send_directly_then_wait(ws: WebSocket, count: int) -> None:
    """`count` numbered 256 KiB messages: written at once (`send_now`) until the transport
    pushes back, the rest through the ASGI send, which waits; then `done <written at once>`."""
    frames = ws.scope["extensions"][FRAMES_EXTENSION]
    filler = bytes(256 << 10)
    direct = 0
    for i in range(count):
        payload = struct.pack("!I", i) + filler
        if direct == i and frames.send_now(payload):
            direct += 1
        else:
            await ws.send_bytes(payload)
    await ws.send_text(f"done {direct}")


@pytest.fixture(params=[False])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Starlette]]:
    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    app.state.disconnects = []
    async with serve(app, ws_max_size=MAX_SIZE, ws_per_message_deflate=request.param) as port:
        yield f"127.0.0.1:{port}", app


def masked(first: int, payload: bytes, *, mask: bool = True) -> bytes:
    """A client frame built by hand, so tests can send what no library would."""
    n = len(payload)
    head = bytes([first])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def raw(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    n = second & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    assert not second & 0x80, "servers never mask"
    return first & 0x0F, await reader.readexactly(n)


async def disconnects(app: Starlette) -> list[tuple[int, str]]:
    """The disconnects the application has seen, once it has seen one."""

    async def seen() -> list[tuple[int, str]]:
        return list(app.state.disconnects)

    return await eventually(seen, timeout=10, interval=0.01, what="the application's disconnect")


async def test_messages_arrive_whole_and_in_order(server: tuple[str, Starlette]) -> None:
    address, _ = server
    async with websockets.connect(f"ws://{address}/ws", compression=None, max_size=None) as c:
        await c.send("héllo wörld")
        assert await c.recv() == "héllo wörld"
        big = os.urandom(MAX_SIZE - 16)  # gathered over many reads
        await c.send(big)
        assert await c.recv() == big
        await c.send([b"frag", b"men", b"ted"])
        assert await c.recv() == b"fragmented"
        await c.send(["fragmented ", "téxt"])
        assert await c.recv() == "fragmented téxt"
        pong = await c.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        for size in (0, 125, 126, 65535, 65536, 200_000):
            data = os.urandom(size)
            await c.send(data)
            assert await c.recv() == data


async def test_frames_joined_or_split_by_tcp(server: tuple[str, Starlette]) -> None:
    address, _ = server
    reader, writer = await raw(address)
    texts = [f"message {i}".encode() for i in range(200)]
    big = os.urandom(300_000)
    stream = b"".join(masked(0x81, t) for t in texts) + masked(0x82, big)
    stream += masked(0x01, b"one ") + masked(0x89, b"ping!") + masked(0x80, b"two")
    for i in range(0, len(stream), 7777):  # frames cut at arbitrary places
        writer.write(stream[i : i + 7777])
        await writer.drain()
    frames = [await read_frame(reader) for _ in range(len(texts) + 3)]
    assert (0xA, b"ping!") in frames  # answered at once, ahead of the application's echoes
    frames.remove((0xA, b"ping!"))
    assert frames == [(0x1, t) for t in texts] + [(0x2, big), (0x1, b"one two")]
    writer.close()


@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [
        (masked(0x82, b"plain", mask=False), 1002, "client frames must be masked"),
        (masked(0xC2, b"deflated?"), 1002, "reserved bits set"),
        (masked(0x83, b"?"), 1002, "unknown opcode 3"),
        (masked(0x80, b"orphan"), 1002, "continuation frame outside a fragmented message"),
        (masked(0x09, b"split ping"), 1002, "control frames must be whole"),
        (masked(0x89, b"p" * 126), 1002, "control frames must be whole"),
        (masked(0x81, b"\xff\xfe"), 1007, "text frame is not valid UTF-8"),
        # (oversized frames are cut after their header: the server stops reading there)
        (masked(0x82, bytes(MAX_SIZE + 1))[:24], 1009, f"message over {MAX_SIZE} bytes"),
        (masked(0x02, bytes(MAX_SIZE - 9)) + masked(0x80, bytes(10))[:10], 1009, "message over"),
        (masked(0x01, b"a") + masked(0x81, b"b"), 1002, "a new message began inside"),
        (masked(0x88, b"\x03"), 1002, "malformed close frame"),
    ],
    # named without the frames' random masks, so parallel workers collect the same tests
    ids=lambda value: f"{len(value)}-byte-frame" if isinstance(value, bytes) else None,
)
async def test_forbidden_frames_are_refused_with_a_reason(
    server: tuple[str, Starlette], frame: bytes, code: int, reason: str
) -> None:
    address, app = server
    reader, writer = await raw(address)
    writer.write(masked(0x81, b"before"))
    assert await read_frame(reader) == (0x1, b"before")
    writer.write(frame + masked(0x81, b"after"))  # "after" is never read
    opcode, body = await read_frame(reader)
    assert opcode == 0x8
    close = Close.parse(body)
    assert (close.code, close.reason[: len(reason)]) == (code, reason)
    assert await reader.read() == b""  # nothing after the close: the connection ends
    writer.close()
    assert await disconnects(app) == [(code, close.reason)]


async def test_close_codes_go_both_ways(server: tuple[str, Starlette]) -> None:
    address, app = server
    async with websockets.connect(f"ws://{address}/ws") as c:
        await c.send("close 4321")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await c.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4321, "asked to")
    async with websockets.connect(f"ws://{address}/ws") as c:
        await c.close(4000, "leaving")
        assert c.close_code == 4000  # the server echoed it
    assert await disconnects(app) == [(4000, "leaving")]


async def test_a_slow_application_pauses_reading(server: tuple[str, Starlette]) -> None:
    """A client sending faster than the application reads is held back by TCP, not queued
    without bound in the replica's memory, and nothing is lost."""
    address, _ = server
    async with websockets.connect(f"ws://{address}/ws", compression=None) as c:
        await c.send("stall 1000")  # more than the server queues: it stops reading first
        for i in range(1000):
            await c.send(f"m{i}")
        reply = await c.recv()
        assert isinstance(reply, str) and reply.endswith(" paused"), reply
        waiting = int(reply.split()[1])
        assert 0 < waiting <= MAX_QUEUED
        assert [await c.recv() for _ in range(1000)] == [f"m{i}" for i in range(1000)]


async def test_direct_writes_stop_when_the_transport_pushes_back(
    server: tuple[str, Starlette],
) -> None:
    """Frames written without waiting for the event loop (how the hub sends commands to an
    agent) are ordinary frames; once the client falls behind, `send_now` refuses instead of
    buffering without bound, and the sender's waiting sends follow in order, nothing lost."""
    address, _ = server
    # More than the two sockets between could take, whatever the kernel's buffer sizes. The
    # direct writes all happen in one turn of the event loop, so the client reads none of
    # them meanwhile.
    count = (tcp_buffer_max("wmem") + tcp_buffer_max("rmem")) // (256 << 10) + 8
    async with websockets.connect(f"ws://{address}/ws", compression=None, max_size=None) as c:
        await c.send(f"direct {count}")
        for i in range(count):
            message = await c.recv()
            assert isinstance(message, bytes) and struct.unpack("!I", message[:4]) == (i,)
        done = await c.recv()
        assert isinstance(done, str) and done.startswith("done ")
        assert 0 < int(done.split()[1]) < count


async def test_binary_messages_go_to_the_hook_only_when_nothing_waits_before_them(
    server: tuple[str, Starlette],
) -> None:
    """How a replica takes an agent's VNC chunks: as they are parsed (no queue, no task switch)
    while the application's queue is empty; behind queued messages otherwise, so the order of
    everything the client sent holds; a message the hook declines takes the queue."""
    address, _ = server
    async with websockets.connect(f"ws://{address}/ws", compression=None) as c:
        await c.send("hook")
        assert await c.recv() == "hooked"
        await c.send(b"a")
        assert await c.recv() == b"hook:a"
        await c.send("stall 3")
        await c.send("t1")  # waits in the queue while the application stalls
        await c.send(b"b")  # so this waits behind it
        await c.send(b"refuse")
        replies = [await c.recv() for _ in range(4)]
        assert replies == ["waiting 3", "t1", b"b", b"refuse"]
        await c.send(b"c")  # the queue is empty again
        assert await c.recv() == b"hook:c"


async def test_random_messages_cut_at_random_places(server: tuple[str, Starlette]) -> None:
    """Many seeded random cases: text and binary messages of every length class, some
    fragmented, with pings between fragments, cut into random pieces; every message comes
    back whole and in order."""
    address, _ = server
    rng = random.Random(6)
    for _case in range(30):
        reader, writer = await raw(address)
        expected: list[tuple[int, bytes]] = []
        stream = b""
        for _ in range(rng.randint(1, 12)):
            size = rng.choice([0, 1, 125, 126, 127, 200, 65535, 65536, rng.randint(0, 300_000)])
            binary = rng.random() < 0.5
            if binary:
                data = os.urandom(size)
            else:  # multi-byte characters: fragments may cut them, the message stays valid
                data = "".join(rng.choices("abc xyzé€", k=size)).encode()
                size = len(data)
            opcode = 0x2 if binary else 0x1
            expected.append((opcode, data))
            parts = min(rng.randint(1, 4), size + 1)
            cuts = sorted(rng.sample(range(size + 1), parts - 1)) if parts > 1 else []
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, size], strict=True)]
            for i, piece in enumerate(pieces):
                first = (opcode if i == 0 else 0x0) | (0x80 if i == len(pieces) - 1 else 0)
                stream += masked(first, piece)
                if i < len(pieces) - 1 and rng.random() < 0.3:
                    stream += masked(0x89, b"mid")
                    expected.append((0xA, b"mid"))
        pos = 0
        while pos < len(stream):
            step = rng.choice([1, 2, 3, 7, 100, 4096, 70_000, 1 << 20])
            writer.write(stream[pos : pos + step])
            await writer.drain()
            pos += step
        got = [await asyncio.wait_for(read_frame(reader), 10) for _ in expected]
        pongs = [f for f in got if f[0] == 0xA]
        assert pongs == [f for f in expected if f[0] == 0xA]
        assert [f for f in got if f[0] != 0xA] == [f for f in expected if f[0] != 0xA]
        writer.close()


@pytest.mark.parametrize("server", [True], indirect=True)
async def test_a_compressed_connection_keeps_working(server: tuple[str, Starlette]) -> None:
    """Run with permessage-deflate (not how StreamSpace runs), a client that negotiates it gets
    uvicorn's own frames, which undo the compression: messages still arrive as sent."""
    address, _ = server
    async with websockets.connect(f"ws://{address}/ws", compression="deflate") as c:
        assert c.protocol.extensions  # negotiated
        for text in ("compressed " * 100, "é" * 5000):
            await c.send(text)
            assert await c.recv() == text
        data = bytes(200_000)
        await c.send(data)
        assert await c.recv() == data
