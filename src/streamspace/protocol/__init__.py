"""The wire contract between control plane and agents: envelope, messages, close codes. No I/O."""

from streamspace.protocol.envelope import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Envelope,
    decode,
    encode,
    make,
)

__all__ = ["MAX_MESSAGE_BYTES", "PROTOCOL_VERSION", "Envelope", "decode", "encode", "make"]
