"""The agent's VNC data frames, written straight to its WebSocket's transport (bypassing the
library's send): a real `websockets` server, which refuses unmasked client frames, receives
them whole and in order between the library's own frames."""

from __future__ import annotations

import asyncio
import os

import websockets
from websockets.asyncio.server import ServerConnection

from streamspace.agents.runtime import _write_binary
from streamspace.protocol.streams import CHUNK


async def test_data_frames_arrive_masked_whole_and_in_order_among_library_frames() -> None:
    received: list[str | bytes] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(message)
        done.set()

    async with websockets.serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        sent: list[str | bytes] = []
        async with websockets.connect(
            f"ws://127.0.0.1:{port}", compression=None, max_size=None
        ) as ws:
            for size in (0, 1, 125, 126, 65535, 65536, CHUNK + 4):
                data = os.urandom(size)
                view = memoryview(bytearray(b"xx" + data))[2:]  # a view, as the pump sends
                if _write_binary(ws, view):
                    sent.append(data)
                else:  # the transport still holds a chunk: the library's send waits
                    await ws.send(data)
                    sent.append(data)
                text = f"control after {size}"
                await ws.send(text)
                sent.append(text)
        await asyncio.wait_for(done.wait(), 5)
        assert received == sent
        assert not _write_binary(ws, b"after the close")  # nothing written once closed
