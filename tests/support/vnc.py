"""A real VNC client (asyncvnc) speaking RFB through a StreamSpace viewer WebSocket: the socket
is bridged to a local socket pair, exactly as a browser's noVNC would carry the bytes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncvnc
import httpx
import websockets

from streamspace.agents.platforms.rfb import RFB_BANNER
from streamspace.agents.rfb_auth import SECURITY_VNC_AUTH, vnc_des


async def stream_url(base: str, session_id: str, headers: dict[str, str]) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        r = await client.post(f"/api/v1/sessions/{session_id}/stream", headers=headers)
        r.raise_for_status()
        return base.replace("http", "ws", 1) + r.json()["url"]


@asynccontextmanager
async def vnc_client(url: str) -> AsyncIterator[Any]:
    """Yield a connected asyncvnc Client whose bytes travel over the viewer WebSocket."""
    ours, theirs = socket.socketpair()
    async with websockets.connect(url, subprotocols=["binary"], max_size=None) as ws:  # type: ignore[list-item]
        reader, writer = await asyncio.open_connection(sock=theirs)
        loop = asyncio.get_running_loop()
        ours.setblocking(False)

        async def ws_to_sock() -> None:
            async for data in ws:
                await loop.sock_sendall(ours, data if isinstance(data, bytes) else data.encode())

        async def sock_to_ws() -> None:
            while data := await loop.sock_recv(ours, 65536):
                await ws.send(data)

        pumps = [asyncio.create_task(ws_to_sock()), asyncio.create_task(sock_to_ws())]

        async def opener(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return reader, writer

        try:
            async with asyncvnc.connect("viewer", 0, opener=opener) as client:
                yield client
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            with contextlib.suppress(Exception):
                ours.close()


async def framebuffer_update(client: Any, timeout: float = 15) -> tuple[int, int]:
    """Ask for a full framebuffer update and wait for it; returns (width, height)."""
    async with asyncio.timeout(timeout):
        pixels = await client.screenshot()
    return int(pixels.shape[1]), int(pixels.shape[0])


async def raw_login(
    host: str, port: int, *, security: int, password: str = ""
) -> tuple[list[int], str]:
    """A client on the host, straight to a session's VNC port (not through the product): it
    chooses `security` and, for VNC Authentication, answers with `password`. Returns the
    security types offered and what came of it: `closed` (hung up on), `failed` (a failed
    SecurityResult), or the framebuffer's size from the ServerInit, `1280x800`."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(10):
            assert RFB_BANNER.fullmatch(await reader.readexactly(12))
            writer.write(b"RFB 003.008\n")
            offered = list(await reader.readexactly((await reader.readexactly(1))[0]))
            writer.write(bytes([security]))
            if security == SECURITY_VNC_AUTH:
                challenge = await reader.readexactly(16)
                writer.write(vnc_des(password=password.encode(), challenge=challenge))
            try:
                (result,) = struct.unpack(">I", await reader.readexactly(4))
            except (asyncio.IncompleteReadError, ConnectionError):
                return offered, "closed"
            if result != 0:
                return offered, "failed"
            writer.write(b"\x01")  # ClientInit
            width, height = struct.unpack(">HH", await reader.readexactly(4))
            return offered, f"{width}x{height}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
