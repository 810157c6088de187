"""`GET /api/v1/agents/connect`: the agents' WebSocket. Authenticates the agent key, checks the
protocol version and leader epoch, then reads one JSON envelope per frame. A report about what
is not the agent's own (another agent's session or command) is refused and counted, and the
connection stays; a report made with a key revoked since the connect closes it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from streamspace.control_plane.asgi.wsserver import FRAMES_EXTENSION
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.db.engine import unavailable
from streamspace.control_plane.hub.connection import AgentConnection
from streamspace.control_plane.ws.close import close_code_for, close_with
from streamspace.errors import (
    PermissionDenied,
    ProtocolError,
    StreamSpaceError,
    Unauthenticated,
    Unavailable,
)
from streamspace.protocol import PROTOCOL_VERSION, Envelope, close_codes, decode, encode, make
from streamspace.protocol.messages import (
    AckPayload,
    CompletePayload,
    FailedPayload,
    HeartbeatPayload,
    PongPayload,
    StatusPayload,
)
from streamspace.protocol.streams import unpack

router = APIRouter()
log = logging.getLogger(__name__)
# Refusals of a report about something that is not the agent's own: counted, and the
# connection stays. Any other refusal (a key revoked since the connect) closes it.
OWN_ONLY = frozenset({"foreign_session", "foreign_command"})
EPOCH = re.compile(r"[0-9]{1,19}")
MAX_EPOCH = 2**63 - 1


def _given(ws: WebSocket, *, header: str, param: str, default: str) -> str:
    """A header's value, else the query parameter's, else the default: present but empty is
    a value (and refused as one), not an absence."""
    value = ws.headers.get(header)
    if value is None:
        value = ws.query_params.get(param)
    return default if value is None else value


def _handshake(ws: WebSocket) -> tuple[str, int, str | None]:
    key = ws.headers.get("x-agent-api-key", "")
    version = _given(ws, header="x-streamspace-protocol", param="v", default="1")
    if version != str(PROTOCOL_VERSION):
        raise ProtocolError(
            f"unsupported protocol version {version[:16]}; this server speaks {PROTOCOL_VERSION}",
            code="unsupported_version",
        )
    raw_epoch = _given(ws, header="x-agent-epoch", param="epoch", default="0")
    # ASCII digits only (str.isdigit takes "²", which int() refuses), and within the BIGINT
    # the epoch is stored in
    if not EPOCH.fullmatch(raw_epoch) or int(raw_epoch) > MAX_EPOCH:
        raise ProtocolError(
            f"X-Agent-Epoch must be an integer from 0 to {MAX_EPOCH}", code="bad_epoch"
        )
    return key, int(raw_epoch), ws.query_params.get("agent_id")


@router.websocket("/api/v1/agents/connect")
async def agent_connect(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    await ws.accept()
    try:
        key, epoch, claimed_id = _handshake(ws)
        agent = await ctx.agent_service.authenticate(key=key)
        if claimed_id and claimed_id != agent.id:
            raise PermissionDenied(f"this key belongs to agent {agent.id}, not {claimed_id[:32]}")
        frames = ws.scope.get("extensions", {}).get(FRAMES_EXTENSION)
        conn = AgentConnection(
            agent_id=agent.id,
            epoch=epoch,
            key_hash=agent.api_key_hash or "",
            socket=ws,
            direct=frames.send_now if frames is not None else None,
        )
        await ctx.hub.attach(conn)
        if frames is not None:
            frames.on_binary = functools.partial(_take_bytes, ctx, conn)
    except StreamSpaceError as exc:
        await close_with(ws, exc)
        return
    except SQLAlchemyError as exc:
        if not unavailable(exc):
            raise
        # the agent retries with its backoff, as for any refusal to connect
        await close_with(ws, Unavailable("the database is unavailable; retry shortly"))
        return
    writer = asyncio.create_task(conn.run_writer(), name=f"agent-writer-{agent.id}")
    try:
        conn.send(
            encode(
                make(
                    "welcome",
                    {
                        "pod": ctx.settings.pod_name,
                        "heartbeatInterval": ctx.settings.heartbeat_interval,
                        # the agent labels what it creates with it (older agents ignore it)
                        "installationId": ctx.installation_id,
                    },
                    epoch=epoch,
                )
            )
        )
        # everything still owed, on reconnect, with the acknowledged commands whose outcome
        # may have been lost with the previous connection or the previous leader
        try:
            await ctx.hub.dispatch(agent.id, resend_after=0, in_doubt=True)
        except SQLAlchemyError as exc:
            if not unavailable(exc):
                raise
            ctx.hub.redeliver(conn)  # once the database answers again
        await _read_loop(ctx, ws, conn)
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        await ctx.hub.detach(conn)


async def _read_loop(ctx: AppContext, ws: WebSocket, conn: AgentConnection) -> None:
    envelope: Envelope | None = None
    while True:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            if conn.close_code is None:
                conn.close_code = message.get("code")
            if message.get("code") == close_codes.SERVICE_RESTART:
                # the server's own close to every socket when it shuts down (the agent
                # reconnects elsewhere at once); what uvicorn leaves open, hub.stop() closes
                ctx.hub.hand_over(conn)
            return
        try:
            if message.get("bytes") is not None:
                _on_bytes(ctx, conn, message["bytes"])
                continue
            envelope = decode(message.get("text") or "")
            if not ctx.hub.is_current(conn):
                continue  # displaced or stale epoch: ignored
            ctx.hub.touch(conn)
            await _handle(ctx, conn, envelope)
        except ProtocolError as exc:
            code = close_codes.TOO_BIG if exc.code == "message_too_big" else close_codes.PROTOCOL
            log.warning("agent %s sent a bad frame: %s", conn.agent_id, exc.message)
            await conn.close(code, exc.message[:120])
            return
        except (PermissionDenied, Unauthenticated) as exc:  # refused: nothing was applied
            if not await _refused(ctx, conn, envelope, exc):
                return
        except ValidationError as exc:
            kind = envelope.type if envelope else "unknown"
            log.warning(
                "agent %s sent an invalid %s payload: %s",
                conn.agent_id,
                kind,
                exc.errors()[0]["msg"],
            )
            await conn.close(close_codes.PROTOCOL, f"invalid {kind} payload")
            return
        except SQLAlchemyError as exc:
            if not unavailable(exc):
                raise
            # Closing the connection would cut its viewers' streams for the whole outage;
            # what the message carried is asked for again once the database answers.
            log.warning(
                "agent %s: its %s was not recorded, the database is unavailable (%s); "
                "its commands are sent again once it answers",
                conn.agent_id,
                envelope.type if envelope else "message",
                type(exc).__name__,
            )
            ctx.hub.redeliver(conn)


async def _refused(
    ctx: AppContext, conn: AgentConnection, envelope: Envelope | None, exc: StreamSpaceError
) -> bool:
    """A report the service refused, counted by reason. True: the connection stays (one bad
    report need not cut the agent's viewers); False: closed, its key was revoked."""
    kind = envelope.type if envelope else "message"
    ctx.metrics.agent_reports_refused.labels(reason=exc.code).inc()
    if exc.code in OWN_ONLY:
        log.warning("agent %s: %s refused (not its own): %s", conn.agent_id, kind, exc.message)
        return True
    log.warning("agent %s: %s refused, closing: %s", conn.agent_id, kind, exc.message)
    conn.revoked = True
    await conn.close(close_code_for(exc), exc.message)
    return False


def _on_bytes(ctx: AppContext, conn: AgentConnection, frame: bytes) -> None:
    """A stream's data frame (raises ProtocolError for a malformed one)."""
    stream_id, data = unpack(frame)
    if ctx.hub.is_current(conn):
        conn.streams.on_data(stream_id, data)


def _take_bytes(ctx: AppContext, conn: AgentConnection, frame: bytes) -> bool:
    """Data frames as the server parses them (wsserver's `on_binary`); a bad one is left to
    the read loop, which refuses it with a close code."""
    try:
        _on_bytes(ctx, conn, frame)
    except ProtocolError:
        return False
    return True


async def _handle(ctx: AppContext, conn: AgentConnection, envelope: Envelope) -> None:
    svc, p = ctx.agent_service, envelope.payload
    if envelope.epoch and envelope.epoch != conn.epoch:
        return  # a frame stamped with another epoch than its connection: ignore
    if envelope.type.startswith("stream_"):
        conn.streams.on_control(envelope.type, p)
    elif envelope.type == "heartbeat":
        hb = HeartbeatPayload.model_validate(p)
        log.info(
            "[AgentHub] heartbeat from %s (active sessions: %d%s)",
            conn.agent_id,
            hb.active_sessions,
            ", draining" if hb.draining else "",
        )
        ctx.hub.heartbeats.record(
            agent_id=conn.agent_id,
            epoch=conn.epoch,
            key_hash=conn.key_hash,
            active=hb.active_sessions,
            draining=hb.draining,
            capacity=hb.capacity.model_dump(by_alias=True) if hb.capacity else None,
        )
    elif envelope.type == "ack":
        ack = AckPayload.model_validate(p)
        ctx.hub.observe_ack(agent_id=conn.agent_id, command_id=ack.command_id)
        await svc.command_outcome(
            agent_id=conn.agent_id,
            epoch=conn.epoch,
            key_hash=conn.key_hash,
            command_id=ack.command_id,
            status="ack",
        )
    elif envelope.type == "complete":
        done = CompletePayload.model_validate(p)
        outcome = await svc.command_outcome(
            agent_id=conn.agent_id,
            epoch=conn.epoch,
            key_hash=conn.key_hash,
            command_id=done.command_id,
            status="completed",
            result=done.result,
        )
        if outcome is not None:
            ctx.metrics.count_outcome(outcome.action, failed=False, seconds=outcome.seconds)
    elif envelope.type == "failed":
        failed = FailedPayload.model_validate(p)
        outcome = await svc.command_outcome(
            agent_id=conn.agent_id,
            epoch=conn.epoch,
            key_hash=conn.key_hash,
            command_id=failed.command_id,
            status="failed",
            error=failed.error,
        )
        ctx.metrics.commands_failed.labels(reason="agent_error").inc()
        if outcome is not None:
            ctx.metrics.count_outcome(outcome.action, failed=True)
    elif envelope.type == "pong":
        pong = PongPayload.model_validate(p)
        await ctx.hub.observe_pong(agent_id=conn.agent_id, ping_id=pong.ping_id)
    elif envelope.type == "status":
        st = StatusPayload.model_validate(p)
        verdict = await svc.observed(
            agent_id=conn.agent_id,
            epoch=conn.epoch,
            key_hash=conn.key_hash,
            session_id=st.session_id,
            state=st.state,
            detail=st.detail,
            vnc=(st.vnc_host, st.vnc_port),
            adopted=st.adopted,
        )
        if verdict == "stop":
            await ctx.hub.stop_orphan(conn.agent_id, st.session_id)
