"""A stand-in VNC server for stream tests (a test double): each 4-byte request N is answered
with the next N bytes of PATTERN, so a lost, doubled or reordered byte shows; and a viewer
that reads it through the control plane, checking every byte."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.support.vnc import stream_url

if TYPE_CHECKING:
    from tests.support.cluster import Cluster
    from tests.support.processes import ApiReplica

PATTERN = bytes(range(251)) * 4200  # about 1 MiB that is not the same shifted by a byte


@asynccontextmanager
async def pattern_source() -> AsyncIterator[int]:
    """A stand-in VNC server (a test double): each 4-byte request N is answered with the next
    N bytes of PATTERN, repeated, so a lost, doubled or reordered byte shows."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        at = 0
        try:
            while True:
                (n,) = struct.unpack(">I", await reader.readexactly(4))
                while n:
                    take = min(n, len(PATTERN) - at)
                    writer.write(PATTERN[at : at + take])
                    at, n = (at + take) % len(PATTERN), n - take
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


def expected(start: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        at = (start + len(out)) % len(PATTERN)
        out += PATTERN[at : at + n - len(out)]
    return bytes(out)


async def session_across_replicas(
    c: Cluster, agent_id: str, port: int
) -> tuple[ApiReplica, ApiReplica, dict[str, str], str]:
    """A memory-platform agent on the first replica whose VNC server is the pattern source on
    `port`, and a running session started through the second one (the command crosses
    replicas). Returns (holder, other, admin headers, session id)."""
    holder, other = c.replicas[0], c.replicas[1]
    admin = await c.token(other.url)
    c.agent(agent_id, url=holder.url, extra={"MEMORY_PLATFORM": f"vnc=127.0.0.1:{port}"})
    await c.approve(agent_id, admin)
    await c.wait_online(agent_id, admin)
    r = await c.call(other.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
    assert r.status_code == 202, r.text
    sid = str(r.json()["id"])
    await c.wait_state(sid, "running", admin)
    return holder, other, admin, sid


class PatternMismatch(AssertionError):
    """The viewer got bytes other than the pattern's next ones: lost, doubled or reordered."""


class StreamStalled(AssertionError):
    """An open stream gave nothing for too long: the path is stuck, not closed."""


async def read_pattern(
    base: str,
    sid: str,
    headers: dict[str, str],
    *,
    stop: asyncio.Event,
    record: Callable[[float, int, str], None],
    chunk: int = 64 * 1024,
    stall: float = 20.0,
    pause: float = 0.0,
) -> None:
    """A viewer of session `sid` (its VNC server the pattern source) through `base` until
    `stop`: asks for `chunk` bytes at a time and checks each against the pattern. When its
    socket closes it opens a new stream at the viewer page's pace (within 0.25 s, then every
    0.2-0.5 s); a new stream starts the pattern again. After each read or failed attempt,
    `record(started, bytes checked, what failed or "")`; `pause` seconds between reads keep
    a viewer at a desktop's pace instead of the machine's. Raises PatternMismatch on a wrong
    byte and StreamStalled when an open stream gives nothing for `stall` seconds."""
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            url = await stream_url(base, sid, headers)
            async with websockets.connect(url, subprotocols=["binary"], max_size=None) as ws:  # type: ignore[list-item]
                at = 0
                while not stop.is_set():
                    started = time.monotonic()
                    await ws.send(struct.pack(">I", chunk))
                    got = bytearray()
                    while len(got) < chunk:
                        try:
                            got += await asyncio.wait_for(ws.recv(), stall)  # type: ignore[operator]
                        except TimeoutError:
                            raise StreamStalled(f"no byte for {stall} s at {at}") from None
                    if bytes(got) != expected(at, chunk):
                        raise PatternMismatch(
                            f"stream bytes {at}..{at + chunk} are not the pattern"
                        )
                    at += chunk
                    failures = 0
                    record(started, chunk, "")
                    if pause:
                        await asyncio.sleep(pause)
        except (ConnectionClosed, InvalidHandshake, httpx.HTTPError, OSError) as exc:
            record(started, 0, type(exc).__name__)  # (OSError: the opening handshake's timeout)
            failures += 1
            await asyncio.sleep(
                random.uniform(0, 0.25) if failures == 1 else random.uniform(0.2, 0.5)
            )
