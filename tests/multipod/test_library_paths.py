"""With every hand-written networking piece switched off (the library paths: uvicorn's
WebSocket protocol, the `websockets` peer client, redis-py for the AgentHub) the
product still does its job across replicas: a session is started through the replica that
does not hold the agent, and a viewer on either replica receives every byte in order."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
import websockets

from tests.support.cluster import cluster
from tests.support.pattern import PATTERN, expected, pattern_source, session_across_replicas
from tests.support.vnc import stream_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LIBRARY_PATHS = {
    "STREAMSPACE_LEAN_WS_SERVER": "false",
    "STREAMSPACE_LEAN_PEER_CLIENT": "false",
    "STREAMSPACE_LEAN_REDIS_CLIENT": "false",
}


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
        # started through the replica without the agent: the command crosses through Redis
        holder, other, admin, sid = await session_across_replicas(c, "library-paths", port)

        await read_through(await stream_url(other.url, sid, admin))  # across replicas
        await read_through(await stream_url(holder.url, sid, admin))  # on the agent's replica
