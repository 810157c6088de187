"""Viewer sockets: `GET /api/v1/sessions/{id}/vnc?token=` for browsers (binary frames, stock
noVNC, `binary` subprotocol) and the internal peer endpoint a browser's replica uses to reach
the replica holding the agent. VNC bytes never go through Redis.

The browser's replica is the viewer's end of a resumable stream (streaming/resume.py): when the
agent's connection or the replica holding it goes away, it resumes the stream wherever the
agent reconnects, and the browser's socket stays open."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from streamspace.control_plane.api.deps import login_principal
from streamspace.control_plane.asgi.wsserver import FRAMES_EXTENSION
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.auth.tokens import session_principal, session_token
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.metrics import StreamMeter
from streamspace.control_plane.streaming import peer
from streamspace.control_plane.streaming.resume import Opened, ViewerEnd
from streamspace.control_plane.streaming.streams import AgentStream, Data, relay
from streamspace.control_plane.ws.close import close_with, closer
from streamspace.errors import ProtocolError, StreamSpaceError, Unavailable
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
        self._now: Callable[[Data | str], bool] | None = (
            self.frames.send_now if self.frames else None
        )
        self.on_text: Callable[[str], None] | None = None  # a peer replica's stream control
        self.close_code: int | None = None  # how the socket ended (1006: dropped)
        self._texts: set[asyncio.Task[None]] = set()

    async def receive_bytes(self) -> bytes | None:
        while True:
            try:
                message = await self.ws.receive()
            except WebSocketDisconnect as exc:
                self.close_code = exc.code
                return None
            except RuntimeError:
                return None
            if message["type"] == "websocket.disconnect":
                self.close_code = message.get("code")
                return None
            if message.get("bytes") is not None:
                self.meter.to_agent.inc(len(message["bytes"]))
                return bytes(message["bytes"])
            if message.get("text") is not None and self.on_text is not None:
                self.on_text(message["text"])

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

    def send_text(self, text: str) -> None:
        """A control message to a peer replica: at once if the socket takes writes, else
        from a task (its order against the bytes does not matter)."""
        if self._now is not None and self._now(text):
            return
        task = asyncio.create_task(self._send_text(text))
        self._texts.add(task)
        task.add_done_callback(self._texts.discard)

    async def _send_text(self, text: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send({"type": "websocket.send", "text": text})


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=code, reason=reason[:120])


@router.websocket("/api/v1/sessions/{session_id}/vnc")
async def browser_vnc(ws: WebSocket, session_id: str) -> None:
    ctx: AppContext = ws.app.state.ctx
    wants_binary = "binary" in ws.scope.get("subprotocols", [])
    await ws.accept(subprotocol="binary" if wants_binary else None)
    try:
        granted = session_principal(
            ctx.tokens, ws.query_params.get("token", ""), session_id=session_id, purpose="stream"
        )
        # held before the login is checked, so an end of the login heard meanwhile closes it
        held = ctx.events.hold(granted, closer(ws))
        try:
            principal = await login_principal(ctx, granted.token_id)  # the login is still live
            agent_id = await _ensure_running(ctx, principal, session_id)
            reason = await _stream(ctx, ws, session_id, agent_id, principal)
        finally:
            ctx.events.release(held)
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
    """Relay the browser's socket to the agent, here or through its replica, resuming the
    stream whenever the agent moves."""
    token = secrets.token_urlsafe(16)

    def on_input(_: int) -> None:
        ctx.activity.touch(session_id)

    async def open_source(resume_from: int | None) -> Opened:
        if agent_id in ctx.hub.local:
            stream = await ctx.hub.open_stream(
                agent_id, session_id, token=token, resume_from=resume_from
            )
            return Opened(
                stream, lambda: ctx.hub.close_stream(stream, "viewer disconnected"), stream.direct
            )
        url = await _owner_url(ctx, agent_id)
        if agent_id in ctx.hub.local:  # it reconnected here meanwhile
            return await open_source(resume_from)
        link = await _peer_link(ctx, url, session_id, principal, token, resume_from)
        return Opened(
            link, link.close, link.direct if isinstance(link, peer.PeerProtocol) else None
        )

    path = "local" if agent_id in ctx.hub.local else "peer"
    with ctx.metrics.viewer(path) as meter:

        def on_resume(ok: bool) -> None:
            ctx.metrics.stream_resumes.labels(outcome="resumed" if ok else "failed").inc()

        end = ViewerEnd(BrowserViewer(ws, meter), on_input=on_input, on_resume=on_resume)
        return await end.run(open_source)


async def _relay_for_peer(
    ctx: AppContext,
    ws: WebSocket,
    session_id: str,
    agent_id: str,
    *,
    token: str,
    resume_from: int | None,
) -> str:
    """The agent is here and a peer replica holds the viewer: relay, passing the resumable
    stream's acknowledgements both ways (streaming/peer.py)."""
    stream = await ctx.hub.open_stream(agent_id, session_id, token=token, resume_from=resume_from)
    viewer: BrowserViewer | None = None
    try:
        with ctx.metrics.viewer("relay") as meter:
            viewer = BrowserViewer(ws, meter)
            if token:  # the viewer's replica asked for a resumable stream: say how it opened
                opened = {"resumable": stream.resumable, "received": stream.input_received}
                try:
                    await ws.send_text(json.dumps({"opened": opened}))
                except Exception:  # the viewer's replica left meanwhile
                    return "viewer disconnected"
                viewer.on_text = lambda text: _peer_control(stream, text)
                stream.on_ack = lambda n, v=viewer: v.send_text(peer.ack_message(n))
            stream.direct.sink = viewer.send_now
            reason = await relay(viewer, stream)
    finally:
        # A link that was not closed normally may have dropped between the replicas only:
        # the agent keeps the stream (for STREAM_RESUME_GRACE), which the viewer's replica
        # resumes through whichever replica it reaches next.
        dropped = viewer is None or viewer.close_code != close_codes.NORMAL
        ctx.hub.close_stream(stream, "viewer disconnected", keep=dropped)
    if stream.lost and stream.resumable:
        raise _Moved(reason)
    return reason


class _Moved(Exception):
    """The agent's connection left this replica mid-stream: the viewer's replica resumes it
    wherever the agent is now."""


def _peer_control(stream: AgentStream, text: str) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        return
    if isinstance(message, dict) and isinstance(ack := message.get("ack"), int):
        stream.ack(ack)


async def _owner_url(ctx: AppContext, agent_id: str) -> str:
    for _ in range(100):  # the agent may be reconnecting right now: a viewer waits on it
        pod = await ctx.hub.registry.lookup(agent_id=agent_id)
        if pod is not None and (address := await ctx.hub.addresses.replica_address(pod)):
            return address
        await asyncio.sleep(0.1)
    raise Unavailable(f"agent {agent_id} is not connected to any replica", code="agent_offline")


async def _peer_link(
    ctx: AppContext,
    base: str,
    session_id: str,
    principal: Principal,
    stream_token: str,
    resume_from: int | None,
) -> peer.PeerProtocol | peer.LibraryPeer:
    """A peer link to the replica holding the agent, its resumable stream opened (or
    resumed)."""
    token = session_token(
        ctx.tokens, principal=principal, session_id=session_id, purpose="peer", ttl=PEER_TOKEN_TTL
    )
    url = (
        base.replace("http", "ws", 1)
        + f"/api/v1/internal/sessions/{session_id}/vnc?token={token}&stream={stream_token}"
        + ("" if resume_from is None else f"&resume={resume_from}")
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
        await peer.opened(link)
    except (TimeoutError, Unavailable) as exc:
        link.close()
        if isinstance(exc, Unavailable):
            raise
        raise Unavailable(
            "the replica holding the agent did not open the stream in time", code="peer_unreachable"
        ) from exc
    return link


@router.websocket("/api/v1/internal/sessions/{session_id}/vnc")
async def peer_vnc(ws: WebSocket, session_id: str) -> None:
    """Another replica relaying a viewer: authenticated by a short-lived peer token."""
    ctx: AppContext = ws.app.state.ctx
    await ws.accept()
    try:
        granted = session_principal(
            ctx.tokens, ws.query_params.get("token", ""), session_id=session_id, purpose="peer"
        )
        principal = await login_principal(ctx, granted.token_id)  # the viewer's login, live
        token, resume = ws.query_params.get("stream", ""), ws.query_params.get("resume")
        digits = resume is not None and resume.isascii() and resume.isdigit() and len(resume) < 20
        if len(token) > 64 or (resume is not None and not (token and digits)):
            raise ProtocolError("malformed stream token or resume offset", code="bad_request")
        session = await ctx.session_service.get(principal=principal, session_id=session_id)
        if session.agent_id is None or session.agent_id not in ctx.hub.local:
            raise Unavailable("the agent is not connected to this replica", code="agent_not_here")
        reason = await _relay_for_peer(
            ctx,
            ws,
            session_id,
            session.agent_id,
            token=token,
            resume_from=None if resume is None else int(resume),
        )
    except StreamSpaceError as exc:
        await close_with(ws, exc)
        return
    except _Moved as moved:
        await _close(ws, close_codes.SERVICE_RESTART, f"the agent moved: {moved}")
        return
    await _close(ws, close_codes.NORMAL, reason)
