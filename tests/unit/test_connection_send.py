"""An agent connection's frames leave in the order they were sent, whether written at once
(the socket takes writes and nothing waits before them) or queued for the writer task."""

from __future__ import annotations

import asyncio

from streamspace.control_plane.hub.connection import AgentConnection


class Socket:
    """Records what is written, directly or through the ASGI send; direct writes only while
    `taking` (the transport is not pushing back)."""

    def __init__(self) -> None:
        self.wire: list[tuple[str, str | bytes]] = []
        self.taking = True

    def send_now(self, data: str | bytes) -> bool:
        if self.taking:
            self.wire.append(("direct", data))
        return self.taking

    async def send_text(self, data: str) -> None:
        self.wire.append(("queued", data))

    async def send_bytes(self, data: bytes) -> None:
        self.wire.append(("queued", data))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        return None


async def test_frames_keep_their_order_across_direct_and_queued_sends() -> None:
    socket = Socket()
    conn = AgentConnection(agent_id="a", epoch=0, socket=socket, direct=socket.send_now)
    writer = asyncio.create_task(conn.run_writer())
    assert conn.send("1")  # written at once
    socket.taking = False
    assert conn.send("2")  # refused by the socket: queued
    socket.taking = True
    assert conn.send(b"3")  # the socket takes writes again, but "2" waits: queued behind it
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert conn.send("4")  # the queue is empty again: at once
    await asyncio.sleep(0)
    writer.cancel()
    assert socket.wire == [("direct", "1"), ("queued", "2"), ("queued", b"3"), ("direct", "4")]
    conn.closed = True
    assert not conn.send("5")
