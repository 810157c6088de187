"""The one place that maps domain errors to WebSocket close codes (protocol/close_codes.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from fastapi import WebSocket

from streamspace.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    ProtocolError,
    StreamSpaceError,
    Unauthenticated,
)
from streamspace.protocol import close_codes


def close_code_for(exc: StreamSpaceError) -> int:
    if isinstance(exc, Unauthenticated):
        return close_codes.UNAUTHENTICATED
    if isinstance(exc, PermissionDenied):
        return close_codes.FORBIDDEN
    if isinstance(exc, NotFound):
        return close_codes.NOT_FOUND
    if isinstance(exc, Conflict):
        return close_codes.CONFLICT
    if isinstance(exc, ProtocolError):
        if exc.code == "unsupported_version":
            return close_codes.UNSUPPORTED_VERSION
        return close_codes.PROTOCOL
    if exc.code == "stream_not_resumable":
        return close_codes.GONE
    return close_codes.UNAVAILABLE


async def close_with(ws: WebSocket, exc: StreamSpaceError) -> None:
    """Close with the error's code and message (trimmed to fit a close frame)."""
    with contextlib.suppress(Exception):
        await ws.close(code=close_code_for(exc), reason=close_codes.fit_reason(exc.message))


def closer(ws: WebSocket) -> Callable[[int, str], None]:
    """A callback that closes `ws` with a code and reason, from a task of its own (it is
    called from the events fan-out): an ended login's 4401, a role change's 1012."""
    pending: set[asyncio.Task[None]] = set()

    async def shut(code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await ws.close(code=code, reason=close_codes.fit_reason(reason))

    def close(code: int, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(shut(code, reason))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return close
