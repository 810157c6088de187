"""VNC readiness and login: does a TCP endpoint speak RFB, and the agent's answer to its
password challenge. Shared by every platform. The probe reads the server's 12-byte version
banner and nothing else (it comes before any authentication, so it works with a password on).

Platforms probe every PROBE_INTERVAL while a session boots. Probing often is what makes a
start fast, not just measured finely: x11vnc answers a client that connects within a few
milliseconds of its listen() about 100 ms later, but one that connects some 50 ms after
that waits out its first screen set-up and gets its banner about 270 ms later (measured on
the session image, bench/session_start.py). A refused connect costs the agent microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket

from streamspace.agents.rfb_auth import RfbError, ServerLogin

RFB_BANNER = re.compile(rb"RFB \d{3}\.\d{3}\n")
BANNER_LENGTH = 12
PROBE_INTERVAL = 0.01
# A SYN to a container whose network is a moment from ready can be dropped, and the kernel
# retries only after a second: give up sooner and probe again.
CONNECT_PATIENCE = 0.25


async def read_rfb_banner(
    *, host: str, port: int, patience: float = 1.0, connect_patience: float = CONNECT_PATIENCE
) -> bytes | None:
    """Return the server's `RFB 003.00x\\n` banner, or None if it does not answer with one."""
    try:
        async with asyncio.timeout(connect_patience):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return None
    try:
        async with asyncio.timeout(patience):
            banner = await reader.readexactly(BANNER_LENGTH)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(patience):
                await writer.wait_closed()
    return banner if RFB_BANNER.fullmatch(banner) else None


async def log_in(sock: socket.socket, *, secret: str, patience: float = 5.0) -> None:
    """Answer the VNC server's handshake on a connected non-blocking socket with the
    session's secret (agents/rfb_auth.py), up to a successful SecurityResult. The server then
    waits for ClientInit, so the socket can be handed to a protocol with nothing unread.
    RfbError when the server refuses; TimeoutError or OSError when it does not answer."""
    loop = asyncio.get_running_loop()
    login = ServerLogin(secret=secret)
    async with asyncio.timeout(patience):
        while not login.done:
            data = await loop.sock_recv(sock, 4096)
            if not data:
                raise RfbError("the session's VNC server closed the connection during login")
            if answer := login.receive(data):
                await loop.sock_sendall(sock, answer)
    if login.leftover():
        raise RfbError("the session's VNC server sent data before the viewer's ClientInit")
