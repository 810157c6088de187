"""VNC readiness: does a TCP endpoint speak RFB? Shared by every platform that waits on a
session's VNC server. It reads the server's 12-byte version banner and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

RFB_BANNER = re.compile(rb"RFB \d{3}\.\d{3}\n")
BANNER_LENGTH = 12


async def read_rfb_banner(*, host: str, port: int, patience: float = 1.0) -> bytes | None:
    """Return the server's `RFB 003.00x\\n` banner, or None if it does not answer with one."""
    try:
        async with asyncio.timeout(patience):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                banner = await reader.readexactly(BANNER_LENGTH)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    return banner if RFB_BANNER.fullmatch(banner) else None
