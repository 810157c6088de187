"""A stand-in VNC server for stream tests (a test double): each 4-byte request N is answered
with the next N bytes of PATTERN, so a lost, doubled or reordered byte shows."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

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
