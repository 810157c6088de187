"""Viewer sockets: `GET /api/v1/sessions/{id}/vnc?token=` for browsers (binary frames, stock
noVNC, `binary` subprotocol) and the internal peer endpoint a browser's replica uses to reach
the replica holding the agent. VNC bytes never go through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from streamspace.control_plane.asgi.wsserver import FRAMES_EXTENSION
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.auth.tokens import session_principal, session_token
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.metrics import StreamMeter
from streamspace.control_plane.streaming import peer
from streamspace.control_plane.streaming.streams import Data, relay
from streamspace.control_plane.ws.close import close_with
from streamspace.errors import StreamSpaceError, Unavailable
from streamspace.protocol import close_codes

router = APIRouter()
log = logging.getLogger(__name__)
WAKE_TIMEOUT = 180.0
PEER_TOKEN_TTL = 30.0
PEER_CONNECT_TIMEOUT = 10.0


class BrowserViewer:
    """A viewer socket (a browser's, or a peer replica's on the internal endpoint). Every byte
    it writes or reads passes here once, whether the relay task or the direct path
    (streams.Passthrough, whose sink is `send_now`) moved it: the one place to count them."""

    def __init__(self, ws: WebSocket, meter: StreamMeter) -> None:
        self.ws = ws
        self.meter = meter
        # wsserver's connection (None on another server): direct writes
        self.frames = ws.scope.get("extensions", {}).get(FRAMES_EXTENSION)
        self._now: Callable[[Data], bool] | None = self.frames.send_now if self.frames else None

    async def receive_bytes(self) -> bytes | None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return None
            if message["type"] == "websocket.disconnect":
                return None
            if message.get("bytes") is not None:
                self.meter.to_agent.inc(len(message["bytes"]))
                return bytes(message["bytes"])

    async def send_bytes(self, data: Data) -> None:
        # Straight to the ASGI server (Starlette's send_bytes is typed for bytes only); the
        # server frames a memoryview without copying it first.
        await self.ws.send({"type": "websocket.send", "bytes": data})
        self.meter.to_viewer.inc(len(data))

    def send_now(self, data: Data) -> bool:
        """Write a binary frame at once if the socket takes writes (wsserver); else False."""
        if self._now is not None and self._now(data):
            self.meter.to_viewer.inc(len(data))
            return True
        return False


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=code, reason=reason[:120])


@router.websocket("/api/v1/sessions/{session_id}/vnc")
async def browser_vnc(ws: WebSocket, session_id: str) -> None:
    ctx: AppContext = ws.app.state.ctx
    wants_binary = "binary" in ws.scope.get("subprotocols", [])
    await ws.accept(subprotocol="binary" if wants_binary else None)
    try:
        principal = session_principal(
            ctx.tokens, ws.query_params.get("token", ""), session_id=session_id, purpose="stream"
        )
        agent_id = await _ensure_running(ctx, principal, session_id)
        reason = await _stream(ctx, ws, session_id, agent_id, principal)
    except StreamSpaceError as exc:
        log.info("viewer for session %s refused: %s", session_id, exc.message)
        await close_with(ws, exc)
        return
    await _close(ws, close_codes.NORMAL, reason)


async def _ensure_running(ctx: AppContext, principal: Principal, session_id: str) -> str:
    """Wake a hibernated session and wait for it; return its agent id."""
    svc = ctx.session_service
    session = await svc.get(principal=principal, session_id=session_id)
    if session.state == "hibernated":
        log.info("viewer opened hibernated session %s; waking it", session_id)
        session = await svc.act(principal=principal, session_id=session_id, action="resume")
    deadline = time.monotonic() + WAKE_TIMEOUT
    while session.state != "running":
        if session.state not in ("pending", "starting", "waking", "hibernating"):
            raise Unavailable(f"session is {session.state}", code="session_not_running")
        if time.monotonic() > deadline:
            raise Unavailable("session did not become ready in time", code="session_not_ready")
        await asyncio.sleep(0.5)
        session = await svc.get(principal=principal, session_id=session_id)
    if session.agent_id is None:
        raise Unavailable("session has no agent", code="session_not_running")
    return session.agent_id


async def _stream(
    ctx: AppContext, ws: WebSocket, session_id: str, agent_id: str, principal: Principal
) -> str:
    def on_input(_: int) -> None:
        ctx.activity.touch(session_id)

    if agent_id in ctx.hub.local:
        return await _local(ctx, ws, session_id, agent_id, path="local", on_input=on_input)
    url = await _owner_url(ctx, agent_id)
    return await _via_peer(ctx, ws, url, session_id, principal, on_input)


async def _local(
    ctx: AppContext,
    ws: WebSocket,
    session_id: str,
    agent_id: str,
    *,
    path: str,
    on_input: Callable[[int], None] | None = None,
) -> str:
    """The agent is here; `path` is "local" for a browser, "relay" for a peer replica."""
    stream = await ctx.hub.open_stream(agent_id, session_id)
    try:
        with ctx.metrics.viewer(path) as meter:
            viewer = BrowserViewer(ws, meter)
            stream.direct.sink = viewer.send_now
            return await relay(viewer, stream, on_input=on_input)
    finally:
        ctx.hub.close_stream(stream, "viewer disconnected")


async def _owner_url(ctx: AppContext, agent_id: str) -> str:
    for _ in range(20):  # the agent may be reconnecting right now
        pod = await ctx.hub.registry.lookup(agent_id=agent_id)
        if pod is not None and (address := await ctx.hub.addresses.replica_address(pod)):
            return address
        await asyncio.sleep(0.5)
    raise Unavailable(f"agent {agent_id} is not connected to any replica", code="agent_offline")


async def _via_peer(
    ctx: AppContext,
    ws: WebSocket,
    base: str,
    session_id: str,
    principal: Principal,
    on_input: Callable[[int], None],
) -> str:
    token = session_token(
        ctx.tokens, principal=principal, session_id=session_id, purpose="peer", ttl=PEER_TOKEN_TTL
    )
    url = (
        base.replace("http", "ws", 1) + f"/api/v1/internal/sessions/{session_id}/vnc?token={token}"
    )
    link: peer.PeerProtocol | peer.LibraryPeer
    try:
        async with asyncio.timeout(PEER_CONNECT_TIMEOUT):
            if ctx.settings.lean_peer_client:
                link = await peer.connect(url)
            else:
                link = await peer.LibraryPeer.connect(url)
    except (OSError, TimeoutError, Unavailable) as exc:
        detail = str(exc) or type(exc).__name__
        raise Unavailable(
            f"cannot reach the replica holding the agent: {detail}", code="peer_unreachable"
        ) from exc

    try:
        with ctx.metrics.viewer("peer") as meter:
            viewer = BrowserViewer(ws, meter)
            if isinstance(link, peer.PeerProtocol):  # earlier payloads wait in its queue
                link.direct.sink = viewer.send_now
            reason = await relay(viewer, link, on_input=on_input)
    finally:
        link.close()
    if link.lost:  # the holding replica went away: the viewer should reconnect
        raise Unavailable(link.close_reason, code="peer_unreachable")
    return reason


@router.websocket("/api/v1/internal/sessions/{session_id}/vnc")
async def peer_vnc(ws: WebSocket, session_id: str) -> None:
    """Another replica relaying a viewer: authenticated by a short-lived peer token."""
    ctx: AppContext = ws.app.state.ctx
    await ws.accept()
    try:
        principal = session_principal(
            ctx.tokens, ws.query_params.get("token", ""), session_id=session_id, purpose="peer"
        )
        session = await ctx.session_service.get(principal=principal, session_id=session_id)
        if session.agent_id is None or session.agent_id not in ctx.hub.local:
            raise Unavailable("the agent is not connected to this replica", code="agent_not_here")
        reason = await _local(ctx, ws, session_id, session.agent_id, path="relay")
    except StreamSpaceError as exc:
        await close_with(ws, exc)
        return
    await _close(ws, close_codes.NORMAL, reason)
