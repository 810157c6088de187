"""What the kernel holds for a TCP socket: the most any socket may buffer under the current
sysctls, and the bytes written to one that its peer has not taken yet (Linux)."""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios
from pathlib import Path


def tcp_buffer_max(kind: str) -> int:
    """The most one TCP socket may buffer, `kind` "rmem" receiving or "wmem" sending: what
    autotuning may grow it to or what setsockopt may set it to, whichever is more. Tests
    that need more data than the sockets between can hold derive the amount from this."""
    autotuned = int(Path(f"/proc/sys/net/ipv4/tcp_{kind}").read_text().split()[2])
    explicit = 2 * int(Path(f"/proc/sys/net/core/{kind}_max").read_text())  # the kernel doubles
    return max(autotuned, explicit)


def unacknowledged(transport: asyncio.BaseTransport) -> int:
    """Bytes written to `transport`'s socket that the other end has not yet taken."""
    out = array.array("i", [0])
    fcntl.ioctl(transport.get_extra_info("socket").fileno(), termios.TIOCOUTQ, out)
    return out[0]
