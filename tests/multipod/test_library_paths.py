"""With every hand-written networking piece switched off (the library paths: uvicorn's
WebSocket protocol, the `websockets` peer client, redis-py for the AgentHub) the
product still does its job across replicas: a session is started through the replica that
does not hold the agent, and a viewer on either replica receives every byte in order."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import websockets

from tests.support.cluster import cluster
from tests.support.vnc import stream_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LIBRARY_PATHS = {
    "STREAMSPACE_LEAN_WS_SERVER": "false",
    "STREAMSPACE_LEAN_PEER_CLIENT": "false",
    "STREAMSPACE_LEAN_REDIS_CLIENT": "false",
}
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


async def read_through(url: str) -> None:
    async with websockets.connect(url, subprotocols=["binary"], max_size=None) as ws:  # type: ignore[list-item]
        at = 0
        for n in (1, 3 << 20, 1, 70_000, 1):
            await ws.send(struct.pack(">I", n))
            got = bytearray()
            while len(got) < n:
                got += await asyncio.wait_for(ws.recv(), 20)  # type: ignore[arg-type]
            assert len(got) == n and bytes(got) == expected(at, n)
            at = (at + n) % len(PATTERN)


async def test_a_cross_replica_stream_on_the_library_paths(tmp_path: Path) -> None:
    async with (
        pattern_source() as port,
        cluster(tmp_path, replicas=2, redis=True, lb=False, extra_env=LIBRARY_PATHS) as c,
    ):
        holder, other = c.replicas
        admin = await c.token(other.url)
        c.agent("library-paths", url=holder.url, extra={"MEMORY_PLATFORM": f"vnc=127.0.0.1:{port}"})
        await c.approve("library-paths", admin)
        await c.wait_online("library-paths", admin)
        # started through the replica without the agent: the command crosses through Redis
        r = await c.call(
            other.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
        )
        assert r.status_code == 202, r.text
        sid = r.json()["id"]
        await c.wait_state(sid, "running", admin)

        await read_through(await stream_url(other.url, sid, admin))  # across replicas
        await read_through(await stream_url(holder.url, sid, admin))  # on the agent's replica
