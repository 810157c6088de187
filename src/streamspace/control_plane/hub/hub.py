"""AgentHub: the agent connections this replica holds, command delivery (local first, else
pub/sub to the owning pod), fencing by leader epoch, and liveness. Durable state is in the
database; the registry, bus and replica addresses (memory or Redis) only route."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.agent_hub.base import (
    AGENT_KEY_TTL,
    CONTROL_CHANNEL,
    EVENTS_CHANNEL,
    AgentRegistry,
    Bus,
    ReplicaAddresses,
    pod_channel,
)
from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.db.engine import unavailable
from streamspace.control_plane.db.records import AgentRecord
from streamspace.control_plane.hub.connection import AgentConnection
from streamspace.control_plane.hub.heartbeats import HeartbeatWriter
from streamspace.control_plane.hub.keys import revoked_keys
from streamspace.control_plane.hub.pings import PingBook
from streamspace.control_plane.hub.replicas import ReplicaDirectory
from streamspace.control_plane.metrics import Metrics
from streamspace.control_plane.services import commands
from streamspace.control_plane.services.agents import check_key
from streamspace.control_plane.services.ports import EventSink, announce_agent
from streamspace.control_plane.streaming.streams import AgentStream
from streamspace.errors import (
    Conflict,
    TimedOut,
    Unavailable,
)
from streamspace.protocol import close_codes, encode, make

log = logging.getLogger(__name__)

# How long a replica trusts what it knows of an agent's replica (from a Redis lookup or an
# announcement). Every attach is announced on the control channel (`displace`) and every
# departure (`detached`), so while this replica's subscription lasts its entries stay right;
# when the subscription is re-established they are all forgotten (announcements may have been
# missed meanwhile). What is left is a race with a move in flight: a command sent to the old
# replica is forwarded by it, a ping refused by it drops the entry. So the TTL is the agent
# keys' own: with a 10 s TTL, most commands to a fleet of thousands of agents, each commanded
# now and then, paid a Redis lookup first.
ROUTE_TTL = float(AGENT_KEY_TTL)
# A command that reached a replica no longer holding its agent is sent on this many times at
# most (an agent moving again meanwhile); after that the sweeper's resend delivers it.
MAX_FORWARDS = 2
# How often an agent whose messages a database outage lost is sent its commands again, until
# the database answers.
REDELIVER_INTERVAL = 0.5


class AgentHub:
    def __init__(
        self,
        *,
        registry: AgentRegistry,
        bus: Bus,
        addresses: ReplicaAddresses,
        db: async_sessionmaker[AsyncSession],
        settings: ControlPlaneSettings,
        metrics: Metrics,
        on_event: Callable[[bytes], Awaitable[None]],
        events: EventSink | None = None,
    ) -> None:
        self.registry, self.bus, self.addresses = registry, bus, addresses
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._on_event = on_event
        self._events = events  # agent changes for admins' UI sockets
        self.pod = settings.pod_name
        self.local: dict[str, AgentConnection] = {}
        self._epochs: dict[str, int] = {}
        self._sent_at: dict[str, tuple[float, str, str]] = {}  # command -> (at, route, agent)
        # keys revoked while this replica ran (agent, key hash) -> (close code, reason): a
        # connection attaching with one of them as the revocation goes by is closed too
        self._revoked: dict[tuple[str, str], tuple[int, str]] = {}
        self._routes: dict[str, tuple[str, float]] = {}  # agent -> (pod, trusted until)
        self._pings = PingBook()
        self.heartbeats = HeartbeatWriter(
            db=db,
            registry=registry,
            pod=self.pod,
            interval=min(settings.heartbeat_interval / 4, 1.0),
        )
        self.replicas = ReplicaDirectory(
            db=db, addresses=addresses, pod=self.pod, internal_url=settings.effective_internal_url
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.running = False

    @property
    def local_count(self) -> int:
        return len(self.local)

    async def start(self) -> None:
        await self.bus.start(
            channels=[pod_channel(self.pod), CONTROL_CHANNEL, EVENTS_CHANNEL],
            handler=self._on_bus,
            on_connected=self._reclaim,
        )
        await self.replicas.beat()
        self._tasks.append(asyncio.create_task(self._liveness_loop(), name="hub-liveness"))
        self._tasks.append(asyncio.create_task(self._key_loop(), name="hub-keys"))
        self._tasks.append(asyncio.create_task(self.replicas.run(), name="hub-replica"))
        self._tasks.append(asyncio.create_task(self.heartbeats.run(), name="hub-heartbeats"))
        self.running = True

    async def stop(self) -> None:
        self.running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.heartbeats.flush()
        for conn in list(self.local.values()):
            self.hand_over(conn)
            await conn.close(close_codes.GOING_AWAY, "control plane shutting down")
            await self.detach(conn)

    def hand_over(self, conn: AgentConnection) -> None:
        """This replica's shutdown sends the agent away (it reconnects elsewhere at once):
        counted as a drain, and `detach` leaves it online."""
        conn.handed_over = True
        self._metrics.agent_drains.inc()

    async def _reclaim(self) -> None:
        """(Re)subscribed: forget the remembered routes (moves may have gone unannounced
        here meanwhile) and claim the agents connected here again."""
        self._routes.clear()
        for agent_id in list(self.local):
            await self.registry.claim(agent_id=agent_id, pod_name=self.pod)

    # -- connections -------------------------------------------------------------------------

    async def attach(self, conn: AgentConnection) -> None:
        """Register a connection; refuse a stale epoch, displace older ones cluster-wide."""
        async with self._db.begin() as db:
            agent = await db.get(AgentRecord, conn.agent_id, with_for_update=True)
            if agent is None:
                raise Conflict("agent is not registered", code="unknown_agent")
            # an admin's reject or key rotation that committed while this one authenticated
            check_key(agent, conn.key_hash)
            if conn.epoch < agent.epoch:
                raise Conflict(
                    f"stale leader epoch {conn.epoch} (current {agent.epoch})", code="stale_epoch"
                )
            agent.epoch, agent.status, agent.pod_name = conn.epoch, "online", self.pod
            agent.last_heartbeat = datetime.now(UTC)
            conn.platform, conn.region = agent.platform, agent.region
        self._epochs[conn.agent_id] = conn.epoch
        await self._displace_local(agent_id=conn.agent_id, epoch=conn.epoch, keep=conn.conn_id)
        self.local[conn.agent_id] = conn
        await self.registry.claim(agent_id=conn.agent_id, pod_name=self.pod)
        await self._announce(
            {
                "type": "displace",
                "agent_id": conn.agent_id,
                "epoch": conn.epoch,
                "conn_id": conn.conn_id,
                "pod": self.pod,
            }
        )
        log.info(
            "[AgentHub] Agent registered: %s (platform: %s, region: %s)",
            conn.agent_id,
            conn.platform,
            conn.region,
        )
        self._metrics.agent_connections.labels(agent_id=conn.agent_id).inc()
        await self._agent_event(conn, "online")
        revoked = self._revoked.get((conn.agent_id, conn.key_hash))
        if revoked is not None:  # revoked after the check above, before it was in `local`
            await self._close_revoked(conn, code=revoked[0], reason=revoked[1])

    async def revoke(self, *, agent_id: str, key_hash: str, code: int, reason: str) -> None:
        """An admin rejected the agent or rotated its key: close its connection made with
        that key, here and (through the control channel) on the replica holding it."""
        await self._revoke_local(agent_id=agent_id, key_hash=key_hash, code=code, reason=reason)
        await self._announce(
            {
                "type": "revoke",
                "agent_id": agent_id,
                "key_hash": key_hash,
                "code": code,
                "reason": reason,
                "pod": self.pod,
            }
        )

    async def _revoke_local(self, *, agent_id: str, key_hash: str, code: int, reason: str) -> None:
        if len(self._revoked) >= 10_000:  # bounds memory; the database check still refuses
            self._revoked.clear()
        self._revoked[(agent_id, key_hash)] = (code, reason)
        conn = self.local.get(agent_id)
        if conn is not None and conn.key_hash == key_hash:
            await self._close_revoked(conn, code=code, reason=reason)

    async def _close_revoked(self, conn: AgentConnection, *, code: int, reason: str) -> None:
        """Closed at once: frames already read from it are dropped (`is_current`), and the
        agent, refused for good (4401/4403), does not reconnect with that key."""
        log.warning(
            "[AgentHub] Agent %s: closing its connection (%d %s)", conn.agent_id, code, reason
        )
        conn.revoked = True
        await conn.close(code, reason)

    async def _announce(self, message: dict[str, Any]) -> None:
        """Tell every replica on the control channel (nobody to tell without Redis)."""
        if self.bus.multi_pod:
            with contextlib.suppress(Unavailable):
                await self.bus.publish(channel=CONTROL_CHANNEL, data=json.dumps(message).encode())

    async def _displace_local(self, *, agent_id: str, epoch: int, keep: str) -> None:
        old = self.local.get(agent_id)
        if old is not None and old.conn_id != keep and old.epoch <= epoch:
            log.info(
                "[AgentHub] Agent %s epoch %d displaced by epoch %d", agent_id, old.epoch, epoch
            )
            self.local.pop(agent_id, None)
            await old.close(
                close_codes.CONFLICT, f"displaced by a newer connection (epoch {epoch})"
            )

    async def detach(self, conn: AgentConnection) -> None:
        conn.closed = True
        conn.streams.close_all("the agent disconnected")
        if self.local.get(conn.agent_id) is not conn:
            return
        del self.local[conn.agent_id]
        await self.heartbeats.forget(conn.agent_id)
        await self.registry.release(agent_id=conn.agent_id, pod_name=self.pod)
        await self._announce({"type": "detached", "agent_id": conn.agent_id, "pod": self.pod})
        if conn.returning:
            # Sent away by this replica's shutdown, or an elected agent whose leader died or
            # stepped down: it (or its standby) reconnects at once. It stays online meanwhile,
            # so a session asked for in that gap is queued (commands are rows, delivered on
            # reconnect) rather than refused with 503. If it never comes back, the sweeper
            # marks it offline once its heartbeats stop.
            if conn.handed_over:
                log.info("[AgentHub] Agent handed over: %s (reconnecting elsewhere)", conn.agent_id)
            else:
                log.info(
                    "[AgentHub] Agent disconnected: %s (leader epoch %d, close %s; kept "
                    "online while it or its standby reconnects)",
                    conn.agent_id,
                    conn.epoch,
                    conn.close_code,
                )
            return
        async with self._db.begin() as db:
            agent = await db.get(AgentRecord, conn.agent_id, with_for_update=True)
            if agent is not None and agent.pod_name == self.pod and agent.epoch == conn.epoch:
                agent.status = "offline"
        log.info("[AgentHub] Agent disconnected: %s", conn.agent_id)
        await self._agent_event(conn, "offline")

    async def _agent_event(self, conn: AgentConnection, status: str) -> None:
        await announce_agent(
            self._events,
            {"id": conn.agent_id, "status": status, "pod_name": self.pod, "epoch": conn.epoch},
        )

    def redeliver(self, conn: AgentConnection) -> None:
        """A message from the agent (an ack, an outcome) could not be recorded: the database
        is out. Its connection stays, and with it the viewers' streams; once the database
        answers, the agent is sent everything still owed, acknowledged commands without an
        outcome included, as on a reconnect, and answers each repeat with the outcome it
        remembers (it applies nothing twice), so no outcome is lost."""
        conn.unrecorded += 1
        if conn.redelivery is None or conn.redelivery.done():
            conn.redelivery = asyncio.create_task(
                self._redeliver(conn), name=f"hub-redeliver-{conn.agent_id}"
            )

    async def _redeliver(self, conn: AgentConnection) -> None:
        while self.is_current(conn) and self.local.get(conn.agent_id) is conn:
            lost = conn.unrecorded
            await asyncio.sleep(REDELIVER_INTERVAL)
            try:
                await self.dispatch(conn.agent_id, resend_after=0, in_doubt=True)
            except Exception as exc:
                if unavailable(exc):
                    continue  # still out
                log.exception("[AgentHub] could not send agent %s its commands", conn.agent_id)
                return
            if conn.unrecorded == lost:  # none lost since this pass read the commands
                log.info(
                    "[AgentHub] database answers again: agent %s sent its outstanding "
                    "commands again for the results it lost",
                    conn.agent_id,
                )
                return

    def is_current(self, conn: AgentConnection) -> bool:
        """False for a closed or displaced connection: its messages are dropped."""
        return not conn.closed and conn.epoch >= self._epochs.get(conn.agent_id, 0)

    def touch(self, conn: AgentConnection) -> None:
        conn.last_seen = time.monotonic()

    async def _key_loop(self) -> None:
        """Once a heartbeat interval, close the connections whose key was revoked without this
        replica hearing of it (the announcement lost with Redis). Their reports were refused
        meanwhile anyway: every report is checked against the current key."""
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval)
            try:
                found = await revoked_keys(db=self._db, conns=list(self.local.values()))
            except Exception as exc:
                if not unavailable(exc):
                    log.exception("[AgentHub] could not check the agents' keys; retrying")
                continue
            for conn, code, reason in found:
                await self._close_revoked(conn, code=code, reason=reason)

    async def _liveness_loop(self) -> None:
        limit = self._settings.heartbeat_interval * self._settings.heartbeat_missed_limit
        while True:
            await asyncio.sleep(min(self._settings.heartbeat_interval / 2, 5.0))
            now = time.monotonic()
            for conn in list(self.local.values()):
                if now - conn.last_seen > limit:
                    log.warning(
                        "[AgentHub] Agent %s missed %d heartbeats; closing",
                        conn.agent_id,
                        self._settings.heartbeat_missed_limit,
                    )
                    await conn.close(close_codes.GOING_AWAY, "heartbeat timeout")
                    await self.detach(conn)

    # -- commands ----------------------------------------------------------------------------

    async def open_stream(
        self, agent_id: str, session_id: str, *, token: str = "", resume_from: int | None = None
    ) -> AgentStream:
        """A VNC stream to a session through the agent connected here (streams.StreamTable.open
        says what `token` and `resume_from` do)."""
        conn = self.local.get(agent_id)
        if conn is None or conn.closed:
            raise Unavailable(
                f"agent {agent_id} is not connected to this replica", code="agent_not_here"
            )
        return await conn.streams.open(conn, session_id, token=token, resume_from=resume_from)

    def close_stream(self, stream: AgentStream, reason: str, *, keep: bool = False) -> None:
        conn = self.local.get(stream.conn.agent_id)
        table = conn.streams if conn is not None else None
        if table is not None:
            table.close(stream, reason, notify=True, keep=keep)
        else:
            stream.ended(reason)

    async def ensure_reachable(self, agent_id: str) -> None:
        if agent_id in self.local:
            return
        if self.bus.shared and not self.bus.multi_pod:
            raise Unavailable(
                f"agent {agent_id} is not connected to this replica ({self.pod}) and "
                "Redis is unavailable, so the command cannot be routed; retry shortly",
                code="agent_unreachable",
            )

    async def dispatch(
        self, agent_id: str, *, resend_after: float | None = None, in_doubt: bool = False
    ) -> int:
        """Send the agent's outstanding commands, locally or via its pod; returns how many.
        `in_doubt` (on a reconnect) re-sends acknowledged ones still without an outcome: the
        agent answers a repeat from what it remembers or observes, never applying it twice."""
        async with self._db.begin() as db:
            due = await commands.outstanding_for(
                db, agent_id=agent_id, resend_after=resend_after, in_doubt=in_doubt
            )
            if resend_after is None:
                due = [c for c in due if c.status == "pending"]
            if not due:
                return 0
            payloads = [commands.wire_payload(c) for c in due]
            sent = await self._route(agent_id, payloads)
            if sent:
                await commands.mark_sent(db, command_ids=[c.id for c in due])
        return len(due) if sent else 0

    async def _route(self, agent_id: str, payloads: list[dict[str, Any]]) -> bool:
        conn = self.local.get(agent_id)
        if conn is not None:
            return self._send_local(conn, payloads, route="local", sent=time.time())
        try:
            pod = await self._pod_of(agent_id)
        except Unavailable:
            self._metrics.commands_failed.labels(reason="unreachable").inc(len(payloads))
            log.warning(
                "cannot route %d command(s) to %s: Redis unavailable", len(payloads), agent_id
            )
            return False
        if pod is None or pod == self.pod:
            return False  # offline: delivered when the agent reconnects
        message = json.dumps(
            {"agent_id": agent_id, "commands": payloads, "sent": time.time(), "origin": self.pod}
        ).encode()
        try:
            receivers = await self.bus.publish(channel=pod_channel(pod), data=message)
        except Unavailable:
            self._metrics.commands_failed.labels(reason="unreachable").inc(len(payloads))
            return False
        for p in payloads:
            log.info(
                "Published command %s (%s) for agent %s to pod:%s:commands",
                p["commandId"],
                p["action"],
                agent_id,
                pod,
            )
        if receivers > 0:
            self._metrics.cross_pod_commands.labels(side="received").inc(len(payloads))
        return receivers > 0

    async def _pod_of(self, agent_id: str) -> str | None:
        """The replica holding the agent: remembered for ROUTE_TTL, else asked of Redis."""
        now = time.monotonic()
        known = self._routes.get(agent_id)
        if known is not None and known[1] > now:
            return known[0]
        pod = await self.registry.lookup(agent_id=agent_id)
        if pod is None:
            self._routes.pop(agent_id, None)
        else:
            self._remember_route(agent_id, pod)
        return pod

    def _remember_route(self, agent_id: str, pod: str) -> None:
        if len(self._routes) >= 100_000:  # bounds memory; a dropped entry is looked up again
            self._routes.clear()
        self._routes[agent_id] = (pod, time.monotonic() + ROUTE_TTL)

    def _send_local(
        self, conn: AgentConnection, payloads: list[dict[str, Any]], *, route: str, sent: float
    ) -> bool:
        ok = True
        for p in payloads:
            ok = conn.send(encode(make("command", p, epoch=conn.epoch))) and ok
            self._sent_at[p["commandId"]] = (sent, route, conn.agent_id)
            self._metrics.commands_dispatched.labels(route=route).inc()
        if len(self._sent_at) > 50_000:
            for key in list(self._sent_at)[:25_000]:
                self._sent_at.pop(key, None)
        return ok

    def observe_ack(self, *, agent_id: str, command_id: str) -> None:
        """The round trip of a command sent from here, acknowledged by its own agent."""
        entry = self._sent_at.get(command_id)
        if entry is not None and entry[2] == agent_id:
            del self._sent_at[command_id]
            sent, route, _ = entry
            self._metrics.command_roundtrip.labels(route=route).observe(max(time.time() - sent, 0))

    async def _on_bus(self, channel: str, data: bytes) -> None:
        if channel == EVENTS_CHANNEL:
            await self._on_event(data)
            return
        message = json.loads(data)
        if channel == CONTROL_CHANNEL:
            kind, pod = message.get("type"), message.get("pod")
            if kind == "displace" and pod != self.pod:
                agent_id, epoch = message["agent_id"], int(message["epoch"])
                self._epochs[agent_id] = max(self._epochs.get(agent_id, 0), epoch)
                self._remember_route(agent_id, str(pod))
                await self._displace_local(agent_id=agent_id, epoch=epoch, keep=message["conn_id"])
            elif kind == "revoke":
                await self._revoke_local(
                    agent_id=str(message["agent_id"]),
                    key_hash=str(message["key_hash"]),
                    code=int(message["code"]),
                    reason=str(message["reason"]),
                )
            elif kind == "detached" and self._routes.get(message["agent_id"], ("",))[0] == pod:
                del self._routes[message["agent_id"]]  # unless it has moved on since
            return
        if message.get("type") in ("ping", "pong"):
            await self._on_ping_bus(message)
            return
        agent_id = str(message.get("agent_id", ""))
        conn = self.local.get(agent_id)
        if conn is not None:
            self._send_local(
                conn,
                message["commands"],
                route="cross_pod",
                sent=float(message.get("sent", time.time())),
            )
            self._metrics.cross_pod_commands.labels(side="delivered").inc(len(message["commands"]))
            return
        await self._forward_misrouted(agent_id, message)

    async def _forward_misrouted(self, agent_id: str, message: dict[str, Any]) -> None:
        """Commands published here on a stale route (the agent moved after the sender looked
        it up): send them on to the replica Redis names now, instead of leaving them to the
        sweeper's resend after the ack timeout. An agent connected nowhere gets them when it
        reconnects; without Redis, the sweeper resends them."""
        self._routes.pop(agent_id, None)
        forwards = int(message.get("forwards", 0))
        if forwards >= MAX_FORWARDS:
            return
        try:
            pod = await self._pod_of(agent_id)  # asks Redis: the entry is gone
        except Unavailable:
            return
        if pod is None or pod == self.pod:
            return
        message["forwards"] = forwards + 1
        with contextlib.suppress(Unavailable):
            await self.bus.publish(channel=pod_channel(pod), data=json.dumps(message).encode())
        log.info(
            "Forwarded %d command(s) for agent %s to pod:%s:commands (sent here on a stale route)",
            len(message.get("commands", ())),
            agent_id,
            pod,
        )

    # -- pings -------------------------------------------------------------------------------

    async def ping(self, agent_id: str, *, wait: float) -> str:
        """Round-trip a `ping` envelope to the agent, here or via its replica; returns the route.
        Unavailable if it is connected nowhere, TimedOut if no pong comes back in time."""
        ping_id = uuid.uuid4().hex
        waiter = self._pings.expect(ping_id=ping_id, agent_id=agent_id)
        try:
            conn = self.local.get(agent_id)
            if conn is not None:
                self._send_ping(conn, ping_id)
            else:
                await self._ping_via_pod(agent_id, ping_id)
            try:
                async with asyncio.timeout(wait):
                    await waiter
            except TimeoutError:
                raise TimedOut(
                    f"agent {agent_id} did not answer a ping within {wait:g} s",
                    code="ping_timeout",
                ) from None
            return "local" if conn is not None else "cross_pod"
        finally:
            self._pings.forget(ping_id)

    def _send_ping(self, conn: AgentConnection, ping_id: str) -> None:
        if not conn.send(encode(make("ping", {}, epoch=conn.epoch, id_=ping_id))):
            raise Unavailable(f"agent {conn.agent_id} is disconnecting", code="agent_offline")

    async def _ping_via_pod(self, agent_id: str, ping_id: str) -> None:
        try:
            pod = await self._pod_of(agent_id)
        except Unavailable:
            raise Unavailable(
                f"agent {agent_id} is not connected to this replica ({self.pod}) and Redis is "
                "unavailable, so the ping cannot be routed",
                code="agent_unreachable",
            ) from None
        if pod is None or pod == self.pod:
            raise Unavailable(f"agent {agent_id} is not connected", code="agent_offline")
        message = {"type": "ping", "agent_id": agent_id, "ping_id": ping_id, "origin": self.pod}
        if not await self.bus.publish(channel=pod_channel(pod), data=json.dumps(message).encode()):
            raise Unavailable(
                f"replica {pod}, which holds agent {agent_id}, is not listening",
                code="agent_unreachable",
            )

    async def _on_ping_bus(self, message: dict[str, Any]) -> None:
        ping_id, agent_id = str(message["ping_id"]), str(message["agent_id"])
        if message["type"] == "pong":
            error = str(message.get("error") or "")
            if error:
                self._routes.pop(agent_id, None)  # it was not there: ask Redis next time
            self._pings.settle(ping_id=ping_id, error=error)
            return
        origin = str(message["origin"])
        conn = self.local.get(agent_id)
        if conn is None or not conn.send(encode(make("ping", {}, epoch=conn.epoch, id_=ping_id))):
            error = f"agent {agent_id} is not connected to replica {self.pod}"
            await self._reply_pong(origin=origin, agent_id=agent_id, ping_id=ping_id, error=error)
            return
        self._pings.forward(ping_id=ping_id, agent_id=agent_id, origin=origin)

    async def observe_pong(self, *, agent_id: str, ping_id: str | None) -> None:
        """An agent's pong: wake the local waiter, or send it back to the replica that asked."""
        if ping_id is None or self._pings.settle(ping_id=ping_id, agent_id=agent_id):
            return
        origin = self._pings.origin_of(ping_id=ping_id, agent_id=agent_id)
        if origin is not None:
            await self._reply_pong(origin=origin, agent_id=agent_id, ping_id=ping_id)

    async def _reply_pong(
        self, *, origin: str, agent_id: str, ping_id: str, error: str = ""
    ) -> None:
        message = {"type": "pong", "agent_id": agent_id, "ping_id": ping_id, "error": error}
        with contextlib.suppress(Unavailable):  # the asker times out with a clear 504
            await self.bus.publish(channel=pod_channel(origin), data=json.dumps(message).encode())

    async def stop_orphan(self, agent_id: str, session_id: str) -> None:
        """The agent runs a session the control plane no longer wants: tell it to stop."""
        from streamspace.control_plane.db.records import SessionRecord

        async with self._db.begin() as db:
            known = await db.get(SessionRecord, session_id) is not None
            commands.add_command(
                db,
                agent_id=agent_id,
                action="stop_session",
                session_id=session_id if known else None,
                spec={"session_id": session_id},
            )
        log.info("[AgentHub] stopping orphan session %s on agent %s", session_id, agent_id)
        await self.dispatch(agent_id)
