"""A viewer's stream on the replica holding the agent: the agent's chunks go straight to the
viewer's socket while it takes writes and nothing waits before them, through the relay task
otherwise; either way the viewer gets them in order and the agent gets its credit back."""

from __future__ import annotations

import asyncio
import json

from streamspace.control_plane.streaming.streams import AgentStream, Data, relay
from streamspace.protocol.streams import WINDOW


class Agent:
    epoch, agent_id = 1, "a"

    def __init__(self) -> None:
        self.granted = 0

    def send(self, text: str | bytes) -> bool:
        message = json.loads(text)
        assert message["type"] == "stream_credit"
        self.granted += message["payload"]["bytes"]
        return True


class Viewer:
    """Takes direct writes only while `taking`; `send_bytes` (the relay's) waits until then."""

    def __init__(self) -> None:
        self.wire: list[tuple[str, bytes]] = []
        self.taking = True
        self.can_write = asyncio.Event()
        self.can_write.set()

    def send_now(self, data: Data) -> bool:
        if self.taking:
            self.wire.append(("direct", bytes(data)))
        return self.taking

    async def send_bytes(self, data: Data) -> None:
        await self.can_write.wait()
        self.wire.append(("relay", bytes(data)))

    async def receive_bytes(self) -> bytes | None:
        await asyncio.Event().wait()  # the viewer sends nothing here
        return None


async def test_chunks_keep_their_order_across_direct_and_relayed_writes() -> None:
    agent, viewer = Agent(), Viewer()
    stream = AgentStream(conn=agent, session_id="s")
    stream.direct.sink = viewer.send_now
    pump = asyncio.create_task(relay(viewer, stream))
    chunk = WINDOW // 4

    stream.deliver(b"1" * chunk)  # the socket takes it: written in this turn
    assert viewer.wire == [("direct", b"1" * chunk)]
    viewer.taking = False
    viewer.can_write.clear()
    stream.deliver(b"2" * chunk)  # refused: queued for the relay task
    viewer.taking = True
    stream.deliver(b"3" * chunk)  # the socket takes writes again, but "2" waits: queued too
    await asyncio.sleep(0.01)
    assert [data[:1] for _, data in viewer.wire] == [b"1"]  # the relay task waits to write
    viewer.can_write.set()
    await asyncio.sleep(0.01)
    stream.deliver(b"4" * chunk)  # nothing waits any more: at once again
    assert viewer.wire == [
        ("direct", b"1" * chunk),
        ("relay", b"2" * chunk),
        ("relay", b"3" * chunk),
        ("direct", b"4" * chunk),
    ]
    assert agent.granted == WINDOW  # every byte written was granted back, either way
    stream.ended("done")
    assert await pump == "done"
