"""WebSocket frame headers (RFC 6455 section 5.2), for the two places that write frames without
a library's serialisation: the control plane's server (wsserver.py, unmasked) and the agent's
VNC data (agents/runtime.py, masked, as a client must). Writing header and payload as two
buffers of one vectored write spares the copy a serialiser makes of every 256 KiB chunk."""

from __future__ import annotations

import os
import struct

from websockets.frames import Opcode
from websockets.speedups import apply_mask

_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def frame_header(opcode: int, length: int, *, masked: bool = False) -> bytes:
    """A whole frame's header (FIN set); with `masked` the mask bit is set and the 4-byte key
    must follow."""
    first, mask_bit = 0x80 | opcode, 0x80 if masked else 0
    if length < 126:
        return bytes((first, mask_bit | length))
    if length < 1 << 16:
        return _LEN16.pack(first, mask_bit | 126, length)
    return _LEN64.pack(first, mask_bit | 127, length)


def masked_frame(opcode: int, data: bytes | memoryview) -> tuple[bytes, bytes]:
    """A client's frame: header with a fresh random mask key, and the masked payload."""
    key = os.urandom(4)
    return frame_header(opcode, len(data), masked=True) + key, apply_mask(data, key)


def masked_binary(data: bytes | memoryview) -> tuple[bytes, bytes]:
    return masked_frame(Opcode.BINARY, data)


def header_size(second: int) -> int:
    """A server frame's header size from its second byte (no mask key)."""
    return 2 + {126: 2, 127: 8}.get(second & 0x7F, 0)


def payload_length(head: bytes | bytearray) -> int:
    """The payload length a whole header announces."""
    length = head[1] & 0x7F
    if length == 126:
        return int(_LEN16.unpack_from(head)[2])
    if length == 127:
        return int(_LEN64.unpack_from(head)[2])
    return length
