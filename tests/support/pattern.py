"""A stand-in VNC server for stream tests (a test double): each 4-byte request N is answered
with the next N bytes of PATTERN, so a lost, doubled or reordered byte shows."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
