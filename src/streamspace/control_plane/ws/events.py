"""`GET /api/v1/ws/events?ticket=...`: live session (and, for admins, agent) changes for the UI,
whichever replica the change happened on; closed with 4401 when its login ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from streamspace.control_plane.api.deps import login_principal, principal_from_token
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.auth.tokens import EVENTS_TICKET, ticket_login
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.ws.close import closer
from streamspace.errors import StreamSpaceError
from streamspace.protocol import close_codes

router = APIRouter()
log = logging.getLogger(__name__)
_warned = False


@router.websocket("/api/v1/ws/events")
async def events(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    await ws.accept()
    try:
        principal = await _principal(ctx, ws)
    except StreamSpaceError as exc:
        await ws.close(code=close_codes.UNAUTHENTICATED, reason=close_codes.fit_reason(exc.message))
        return
    listener = ctx.events.listen(principal)
    held = ctx.events.hold(principal, closer(ws))
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
        ctx.events.release(held)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


async def _principal(ctx: AppContext, ws: WebSocket) -> Principal:
    """A ticket (`?ticket=`, from POST /api/v1/events/ticket: the login token stays out of
    URLs), else the login token in the Authorization header; `?token=<login token>` still
    works for clients from before tickets, and is logged once so operators can see them."""
    ticket = ws.query_params.get("ticket")
    if ticket:
        return await login_principal(ctx, ticket_login(ctx.tokens, ticket, purpose=EVENTS_TICKET))
    token = ws.query_params.get("token")
    if token:
        global _warned
        if not _warned:
            _warned = True
            log.warning(
                "an events socket carried its login token in the URL (?token=); clients "
                "should ask POST /api/v1/events/ticket for a ticket instead"
            )
    else:
        token = ws.headers.get("authorization", "").removeprefix("Bearer ")
    return await principal_from_token(ctx, token)


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) client frames until the socket closes."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await ws.receive()
            if ws.client_state.name == "DISCONNECTED":
                return
