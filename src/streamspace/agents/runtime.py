"""The agent runtime: connect to any control-plane replica, heartbeat, run commands
concurrently (each command id applied at most once), report observed session status, and
reconnect with capped, jittered exponential backoff."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

from streamspace.agents.platforms.base import ObservedSession, Platform, SessionSpec
from streamspace.agents.streams import AgentStreams
from streamspace.config import AgentSettings
from streamspace.errors import StreamSpaceError
from streamspace.leader.loop import StopLeading
from streamspace.netio.wsframes import masked_binary
from streamspace.protocol import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, Envelope, decode, encode, make
from streamspace.protocol.close_codes import (
    CONFLICT,
    FORBIDDEN,
    GOING_AWAY,
    SERVICE_RESTART,
    UNAUTHENTICATED,
    UNSUPPORTED_VERSION,
)
from streamspace.protocol.messages import CommandPayload, WelcomePayload
from streamspace.protocol.streams import CHUNK, HEADER, unpack

log = logging.getLogger(__name__)
Frame = str | bytes | memoryview  # control text, or a binary stream frame (maybe a view)
FATAL_CLOSES = {UNAUTHENTICATED, FORBIDDEN, UNSUPPORTED_VERSION}
SENT_AWAY = {GOING_AWAY, SERVICE_RESTART}  # the replica is stopping: reconnect at once
APPLIED_MEMORY = 5000
WELCOME_TIMEOUT = 10.0  # the welcome is the first frame; a control plane sends it at once


def _write_binary(ws: ClientConnection, data: bytes | memoryview) -> bool:
    """Write one binary message straight to the connection's transport as one masked frame,
    bypassing `websockets`' send (its serialiser copies every 256 KiB chunk twice and runs a
    context manager per message; this path is the agent's share of every VNC byte). False, with
    nothing written, when the connection is not open or the transport already holds a chunk's
    worth: the caller then uses `ws.send`, which waits for the transport to drain. Safe beside
    the library's own writes: it flushes each of its frames whole, synchronously."""
    transport = ws.transport
    if (
        ws.protocol.state is not State.OPEN
        or transport.is_closing()
        or transport.get_write_buffer_size() >= CHUNK
    ):
        return False
    transport.writelines(masked_binary(data))
    return True


class FatalAgentError(StreamSpaceError):
    """The control plane refused this agent for good (bad key, stale epoch, wrong version)."""


class AgentRefused(FatalAgentError, StopLeading):
    """Refused by the control plane itself (its key rejected, rotated or unknown, or a
    protocol it does not speak): an elected agent stops leading and exits rather than
    campaigning again, since no new term would be let in."""


class AgentRuntime:
    def __init__(
        self,
        *,
        settings: AgentSettings,
        platform: Platform,
        key: str,
        epoch: int = 0,
        still_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings, self.platform, self.key, self.epoch = settings, platform, key, epoch
        self.still_leader = still_leader  # checked before every action (local fencing)
        self.draining = False
        self.connected = asyncio.Event()
        # control frames (priority 0) go before VNC data (priority 1); data is bounded by credit
        self._outbox: asyncio.PriorityQueue[tuple[int, int, Frame]] = asyncio.PriorityQueue()
        self._ws: ClientConnection | None = None  # while connected
        self._seq = itertools.count()
        self.streams = AgentStreams(
            platform=platform,
            send_control=self.send,
            send_data=self._send_data,
            resume_grace=settings.stream_resume_grace,
        )
        self._applied: OrderedDict[str, Envelope | None] = OrderedDict()  # id -> outcome
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._active: set[str] = set()

    # -- connection loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled; raise FatalAgentError when refused for good."""
        attempt = 0
        watcher = asyncio.create_task(self._watch_platform(), name="platform-watch")
        try:
            await self._load_active()
            rushed = False  # the last reconnect was immediate: never twice in a row
            while True:
                sent_away = False
                try:
                    sent_away = await self._connect_once()
                    attempt = 0
                except FatalAgentError:
                    raise
                except (TimeoutError, OSError, ConnectionClosed, InvalidStatus) as exc:
                    log.warning("agent %s: connection lost (%s)", self.settings.agent_id, exc)
                rushed = sent_away and not rushed
                if rushed:  # the replica is stopping: another one takes us at once
                    log.info(
                        "agent %s: the control plane replica is going away; reconnecting now",
                        self.settings.agent_id,
                    )
                    continue
                delay = self._backoff(attempt)
                attempt += 1
                log.info(
                    "agent %s: reconnect in %.1f s (attempt %d)",
                    self.settings.agent_id,
                    delay,
                    attempt,
                )
                await asyncio.sleep(delay)
        finally:
            watcher.cancel()
            self.streams.close_all()
            for task in list(self._running):
                task.cancel()

    def _backoff(self, attempt: int) -> float:
        """Full jitter: anywhere up to 0.5 s after a first loss (so a replica's agents do not
        all arrive at once), doubling up to RECONNECT_MAX_BACKOFF while attempts fail."""
        cap = self.settings.reconnect_max_backoff
        return float(random.uniform(0.0, 1.0) * min(cap, 0.5 * 2**attempt))

    async def _connect_once(self) -> bool:
        """One connection, until it ends; True when the replica sent us away on purpose
        (it is shutting down: 1001 going away, 1012 service restart)."""
        url = f"{self.settings.ws_base_url}/api/v1/agents/connect?agent_id={self.settings.agent_id}"
        headers = {
            "X-Agent-API-Key": self.key,
            "X-Agent-Epoch": str(self.epoch),
            "X-StreamSpace-Protocol": str(PROTOCOL_VERSION),
        }
        async with websockets.connect(
            url,
            additional_headers=headers,
            max_size=max(MAX_MESSAGE_BYTES, CHUNK + HEADER.size),
            open_timeout=10,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
        ) as ws:
            log.info(
                "agent %s: connected to %s (epoch %d); reconnect complete",
                self.settings.agent_id,
                self.settings.control_plane_url,
                self.epoch,
            )
            self._ws = ws
            self.connected.set()
            try:
                await self._session(ws)
            except BaseException:
                if self.epoch:
                    # An elected leader stopping (SIGTERM, lost lease): not a goodbye (1000)
                    # but 1001, so the control plane keeps the agent schedulable while the
                    # standby takes the lease and connects.
                    # bounded: a partitioned network must not hold the lease's release up
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(1):
                            await ws.close(GOING_AWAY, "leader stepping down; a standby takes over")
                raise
            finally:
                self._ws = None
                self.connected.clear()
                # the viewers' replicas resume them on the next connection, wherever it is
                self.streams.detach_all()
                self._drop_stream_frames()
        self._raise_if_fatal(ws)
        return ws.close_code in SENT_AWAY

    def _raise_if_fatal(self, ws: ClientConnection) -> None:
        code, reason = ws.close_code, ws.close_reason or ""
        if code in FATAL_CLOSES:
            raise AgentRefused(f"control plane closed the connection: {code} {reason}")
        if code == CONFLICT and "stale" in reason:
            raise FatalAgentError(f"control plane closed the connection: {code} {reason}")
        if code == CONFLICT:
            raise FatalAgentError(f"displaced by another connection for this agent: {reason}")

    async def _session(self, ws: ClientConnection) -> None:
        await self._greeted(ws)
        await self._report_all()
        tasks = [
            asyncio.create_task(self._writer(ws)),
            asyncio.create_task(self._heartbeats()),
            asyncio.create_task(self._reader(ws)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() and not isinstance(task.exception(), ConnectionClosed):
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _drop_stream_frames(self) -> None:
        """Stream frames still queued name stream ids of the connection that just ended; on
        the next one those ids mean other streams, or nothing."""
        kept = []
        while not self._outbox.empty():
            item = self._outbox.get_nowait()
            if isinstance(item[2], str) and '"type":"stream_' not in item[2]:
                kept.append(item)  # data frames go too: resumed streams send them again
        for item in kept:
            self._outbox.put_nowait(item)

    def _queue(self, frame: Frame) -> None:
        self._outbox.put_nowait((0 if isinstance(frame, str) else 1, next(self._seq), frame))

    def _send_data(self, frame: bytes | memoryview) -> None:
        """A VNC data frame: written at once while nothing waits in the outbox (so control
        frames keep their precedence and everything its order), queued otherwise."""
        if self._ws is not None and self._outbox.empty() and _write_binary(self._ws, frame):
            return
        self._queue(frame)

    async def _writer(self, ws: ClientConnection) -> None:
        while True:
            _, _, frame = await self._outbox.get()
            if not isinstance(frame, str) and _write_binary(ws, frame):
                continue
            try:
                await ws.send(frame)
            except ConnectionClosed:
                if isinstance(frame, str):
                    self._queue(frame)  # keep control frames for the next connection
                raise

    async def _greeted(self, ws: ClientConnection) -> None:
        """Take the control plane's first frame, its welcome, before reporting anything: it
        names the installation, which the platform must know before it lists its sessions
        (another installation's on the same engine are not this agent's to report)."""
        try:
            async with asyncio.timeout(WELCOME_TIMEOUT):
                frame = await ws.recv()
        except TimeoutError:
            log.warning("agent %s: no welcome from the control plane", self.settings.agent_id)
            return
        self._on_frame(frame)

    def _welcomed(self, payload: dict[str, Any]) -> None:
        try:
            welcome = WelcomePayload.model_validate(payload)
        except ValueError as exc:
            log.warning("agent: ignoring an invalid welcome: %s", exc)
            return
        new = welcome.installation_id
        if new is None or new == self.platform.installation_id:
            return  # a control plane from before installation ids, or no change
        if self.platform.installation_id is not None:
            log.warning(
                "agent %s: the control plane's installation is %s, no longer %s",
                self.settings.agent_id,
                new,
                self.platform.installation_id,
            )
        self.platform.use_installation(new)

    async def _reader(self, ws: ClientConnection) -> None:
        async for frame in ws:
            self._on_frame(frame)

    def _on_frame(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            try:
                self.streams.on_data(*unpack(frame))
            except StreamSpaceError as exc:
                log.warning("agent: bad stream frame from the control plane: %s", exc.message)
            return
        try:
            envelope = decode(frame)
        except StreamSpaceError as exc:
            log.warning("agent: ignoring a bad frame from the control plane: %s", exc.message)
            return
        if envelope.type == "command":
            self._on_command(envelope)
        elif envelope.type.startswith("stream_"):
            self.streams.on_control(envelope.type, envelope.payload)
        elif envelope.type == "welcome":
            self._welcomed(envelope.payload)
        elif envelope.type == "ping":
            self.send("pong", {"pingId": envelope.id})
        elif envelope.type == "shutdown":
            log.info(
                "agent: control plane asked us to shut down: %s",
                envelope.payload.get("reason", ""),
            )
            raise FatalAgentError("shutdown requested by the control plane")

    def send(self, type_: Any, payload: dict[str, Any]) -> None:
        self._queue(encode(make(type_, payload, epoch=self.epoch)))

    async def _heartbeats(self) -> None:
        while True:
            self.send(
                "heartbeat",
                {
                    "activeSessions": len(self._active),
                    "draining": self.draining,
                    "capacity": {"maxSessions": self.settings.max_sessions},
                },
            )
            log.info(
                "agent %s: heartbeat sent (%d active sessions)",
                self.settings.agent_id,
                len(self._active),
            )
            await asyncio.sleep(self.settings.heartbeat_interval)

    # -- commands ----------------------------------------------------------------------------

    def _on_command(self, envelope: Envelope) -> None:
        try:
            command = CommandPayload.model_validate(envelope.payload)
        except ValueError as exc:
            log.warning("agent: ignoring an invalid command: %s", exc)
            return
        if command.command_id in self._applied:  # a re-delivery: never apply twice
            self.send("ack", {"commandId": command.command_id})
            outcome = self._applied[command.command_id]
            if outcome is not None:
                self._queue(encode(outcome))
            return
        self._applied[command.command_id] = None
        while len(self._applied) > APPLIED_MEMORY:
            self._applied.popitem(last=False)
        self.send("ack", {"commandId": command.command_id})
        task = asyncio.create_task(self._execute(command), name=f"cmd-{command.command_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _execute(self, command: CommandPayload) -> None:
        session_id = command.session_id or str(command.spec.get("session_id", ""))
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:  # commands for one session run in order; others run concurrently
            try:
                result = await self._apply(command, session_id)
                outcome = make(
                    "complete",
                    {"commandId": command.command_id, "result": result},
                    epoch=self.epoch,
                )
            except Exception as exc:
                message = exc.message if isinstance(exc, StreamSpaceError) else repr(exc)
                log.warning("agent: %s %s failed: %s", command.action, session_id, message)
                outcome = make(
                    "failed", {"commandId": command.command_id, "error": message}, epoch=self.epoch
                )
        self._applied[command.command_id] = outcome
        self._queue(encode(outcome))

    async def _apply(self, command: CommandPayload, session_id: str) -> dict[str, Any]:
        if not self.still_leader():
            raise FatalAgentError("lost leadership before acting; another replica leads now")
        if command.action == "start_session":
            if session_id not in self._active and len(self._active) >= self.settings.max_sessions:
                raise StreamSpaceError(
                    f"agent at capacity ({len(self._active)}/"
                    f"{self.settings.max_sessions} sessions)",
                    code="capacity",
                )
            spec = SessionSpec(
                **{k: v for k, v in command.spec.items() if k in SessionSpec.__dataclass_fields__}
            )
            self._active.add(session_id)
            try:
                return self._result(await self.platform.start(spec))
            except Exception:
                self._active.discard(session_id)
                raise
        if command.action == "wake_session":
            observed = await self.platform.wake(session_id)
            self._active.add(session_id)
            return self._result(observed)
        if command.action == "hibernate_session":
            await self.platform.hibernate(session_id)
        else:
            await self.platform.stop(session_id)
        self._active.discard(session_id)
        return {"sessionId": session_id}

    @staticmethod
    def _result(observed: ObservedSession) -> dict[str, Any]:
        return {
            "sessionId": observed.session_id,
            "state": observed.state,
            "vncHost": observed.vnc_host,
            "vncPort": observed.vnc_port,
        }

    # -- observed status ---------------------------------------------------------------------

    async def _load_active(self) -> None:
        with contextlib.suppress(Exception):
            self._active = {
                s.session_id
                for s in await self.platform.list_sessions()
                if s.state in ("running", "starting")
            }

    async def _report_all(self) -> None:
        """After every (re)connect, tell the control plane what this agent really runs."""
        try:
            sessions = await self.platform.list_sessions()
        except Exception as exc:
            log.warning("agent: could not list sessions to report: %s", exc)
            return
        self._active = {s.session_id for s in sessions if s.state in ("running", "starting")}
        for observed in sessions:
            self._report(observed)

    def _report(self, observed: ObservedSession) -> None:
        status: dict[str, Any] = {
            "sessionId": observed.session_id,
            "state": observed.state,
            "detail": observed.detail,
            "vncHost": observed.vnc_host,
            "vncPort": observed.vnc_port,
        }
        if observed.adopted:
            status["adopted"] = True  # an older control plane ignores it
        self.send("status", status)

    async def _watch_platform(self) -> None:
        while True:
            try:
                async for observed in self.platform.watch():
                    if observed.state in ("failed", "missing"):
                        self._active.discard(observed.session_id)
                    self._report(observed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("agent: platform watch failed; restarting it")
                await asyncio.sleep(1)
