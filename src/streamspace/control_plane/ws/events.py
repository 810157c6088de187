"""`GET /api/v1/ws/events?token=...`: live session (and, for admins, agent) changes for the UI,
whichever replica the change happened on."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from streamspace.control_plane.api.deps import principal_from_token
from streamspace.control_plane.context import AppContext
from streamspace.errors import StreamSpaceError
from streamspace.protocol import close_codes

router = APIRouter()


@router.websocket("/api/v1/ws/events")
async def events(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    await ws.accept()
    token = ws.query_params.get("token") or ws.headers.get("authorization", "").removeprefix(
        "Bearer "
    )
    try:
        principal = await principal_from_token(ctx, token)
    except StreamSpaceError as exc:
        await ws.close(code=close_codes.UNAUTHENTICATED, reason=exc.message[:120])
        return
    listener = ctx.events.listen(principal)
    receiver = asyncio.create_task(_drain(ws))
    try:
        await ws.send_json({"kind": "hello", "data": {"pod_name": ctx.settings.pod_name}})
        while not receiver.done():
            getter = asyncio.create_task(listener.queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await ws.send_json(getter.result())
            else:
                getter.cancel()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        ctx.events.forget(listener)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) client frames until the socket closes."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await ws.receive()
            if ws.client_state.name == "DISCONNECTED":
                return
