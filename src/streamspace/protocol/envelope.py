"""One JSON envelope per WebSocket text frame: {"v", "id", "type", "timestamp", "epoch", "payload"}.

`decode` refuses anything malformed with ProtocolError, so handlers only see valid messages.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamspace.errors import ProtocolError

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024
MAX_DEPTH = 32  # nesting of objects/arrays in a frame; real payloads use fewer than 6

MessageType = Literal[
    # control plane -> agent
    "command",
    "ping",
    "shutdown",
    "welcome",
    # either direction: VNC data streams (bytes travel in binary frames, see protocol/streams.py)
    "stream_open",
    "stream_opened",
    "stream_credit",
    "stream_close",
    "stream_ack",
    # agent -> control plane
    "heartbeat",
    "ack",
    "complete",
    "failed",
    "status",
    "pong",
]


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(PROTOCOL_VERSION, ge=1)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)
    type: MessageType
    timestamp: float = Field(default_factory=time.time)
    epoch: int = Field(0, ge=0)
    payload: dict[str, Any] = Field(default_factory=dict)


def make(
    type_: MessageType,
    payload: dict[str, Any] | None = None,
    *,
    epoch: int = 0,
    id_: str | None = None,
) -> Envelope:
    fields: dict[str, Any] = {"type": type_, "payload": payload or {}, "epoch": epoch}
    if id_ is not None:
        fields["id"] = id_
    return Envelope(**fields)


def encode(envelope: Envelope) -> str:
    return envelope.model_dump_json()


def _not_json(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    """NaN and infinities would be re-encoded as null, so a frame would not survive a relay."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _too_deep(data: dict[str, Any]) -> bool:
    """Deep nesting would fail later, when the envelope is encoded again to be relayed."""
    level: list[Any] = [data]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


# Built once: json.loads with hooks builds a new decoder (and scanner) for every frame.
_JSON = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)


def decode(frame: str | bytes) -> Envelope:
    """Parse one frame; raise ProtocolError naming what is wrong."""
    if len(frame) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"message larger than {MAX_MESSAGE_BYTES} bytes", code="message_too_big"
        )
    try:
        data = _JSON.decode(frame if isinstance(frame, str) else frame.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("frame is not valid JSON", code="bad_frame") from exc
    except RecursionError as exc:
        raise ProtocolError("frame is nested too deeply", code="bad_frame") from exc
    if not isinstance(data, dict):
        raise ProtocolError("frame must be a JSON object", code="bad_frame")
    if _too_deep(data):
        raise ProtocolError(f"frame nested deeper than {MAX_DEPTH} levels", code="bad_frame")
    if data.get("v") not in (None, PROTOCOL_VERSION):
        raise ProtocolError(
            f"unsupported protocol version {data.get('v')!r}; "
            f"this server speaks {PROTOCOL_VERSION}",
            code="unsupported_version",
        )
    try:
        return Envelope.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProtocolError(
            f"invalid message: {where}: {first['msg']}", code="bad_message"
        ) from exc
