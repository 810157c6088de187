"""Prometheus metrics of one replica, on its own registry (several apps may share a process in
tests). The guide's four names are exported exactly; gauges are refreshed at scrape time.
Hot paths touch only pre-bound children: one Counter.inc per stream chunk, never per byte."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import AgentRecord, SessionRecord
from streamspace.control_plane.services.states import ACTIVE_STATES

# Where a viewer stream runs, seen from this replica: `local` a browser here and the agent
# here; `peer` a browser here, bytes relayed from the replica holding the agent; `relay` the
# holding replica's end of that hop (no browser here: leave it out when counting viewers).
log = logging.getLogger(__name__)
DB_TIMEOUT = 2.0
VIEWER_PATHS = ("local", "peer", "relay")
START_KINDS = {"start_session": "start", "wake_session": "wake"}


@dataclass(frozen=True)
class StreamMeter:
    """The counters one viewer stream adds its chunks to (children bound once per stream)."""

    to_viewer: Counter
    to_agent: Counter


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        r = self.registry
        self.agents_connected = Gauge(
            "streamspace_agents_connected",
            "Agents with a live connection, cluster-wide.",
            registry=r,
        )
        self.agents_local = Gauge(
            "streamspace_agents_connected_local", "Agents connected to this replica.", registry=r
        )
        self.sessions_active = Gauge(
            "streamspace_sessions_active", "Active sessions per agent.", ["agent_id"], registry=r
        )
        self.commands_dispatched = Counter(
            "streamspace_commands_dispatched_total",
            "Commands sent to agents.",
            ["route"],
            registry=r,
        )
        self.cross_pod_commands = Counter(
            "streamspace_cross_pod_commands_total",
            "Commands for an agent on another replica, counted on both replicas: side=received"
            " where the request arrived (published to the agent's replica), side=delivered"
            " where the agent is connected (also counted there in"
            ' streamspace_commands_dispatched_total{route="cross_pod"}).',
            ["side"],
            registry=r,
        )
        self.commands_failed = Counter(
            "streamspace_commands_failed_total",
            "Failed command dispatches and executions.",
            ["reason"],
            registry=r,
        )
        self.command_roundtrip = Histogram(
            "streamspace_command_roundtrip_seconds",
            "Command sent -> acknowledged.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.http_latency = Histogram(
            "streamspace_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route", "status"],
            registry=r,
        )
        self.agent_connections = Counter(
            "streamspace_agent_connections_total",
            "Agent connections accepted by this replica (a fast rise means a flapping agent).",
            ["agent_id"],
            registry=r,
        )
        self.agent_reports_refused = Counter(
            "streamspace_agent_reports_refused_total",
            "Agent reports refused and not applied: about another agent's session"
            " (foreign_session) or command (foreign_command), or sent after an admin rotated"
            " the agent's key (key_revoked) or rejected it (agent_rejected).",
            ["reason"],
            registry=r,
        )
        self.session_starts = Counter(
            "streamspace_session_starts_total",
            "Session starts and wakes whose outcome an agent reported.",
            registry=r,
        )
        self.session_start_failures = Counter(
            "streamspace_session_start_failures_total",
            "Session starts and wakes that an agent reported as failed.",
            registry=r,
        )
        # Exported only where Redis is configured (labelled: no sample until set), so that
        # single-pod installs never look like replicas that lost Redis.
        self.redis_connected = Gauge(
            "streamspace_redis_connected",
            "1 while this replica's AgentHub reaches Redis (multi-pod mode), else 0.",
            ["db"],
            registry=r,
        )
        self._streaming(r)
        self._lifecycle(r)
        for route in ("local", "cross_pod"):
            self.commands_dispatched.labels(route=route)
            self.command_roundtrip.labels(route=route)
        for side in ("received", "delivered"):
            self.cross_pod_commands.labels(side=side)
        self.commands_failed.labels(reason="unreachable")

    def _streaming(self, r: CollectorRegistry) -> None:
        self.viewers = Gauge(
            "streamspace_viewers",
            "Open viewer streams on this replica: path=local (browser and agent here), peer"
            " (browser here, agent on another replica), relay (agent here, browser on another"
            " replica; already counted there as peer).",
            ["path"],
            registry=r,
        )
        self.stream_bytes = Counter(
            "streamspace_stream_bytes_total",
            "VNC bytes written to viewer sockets (direction=to_viewer) and read from them"
            " (to_agent) on this replica, by path as in streamspace_viewers.",
            ["direction", "path"],
            registry=r,
        )
        for path in VIEWER_PATHS:
            self.viewers.labels(path=path)
            for direction in ("to_viewer", "to_agent"):
                self.stream_bytes.labels(direction=direction, path=path)

    def _lifecycle(self, r: CollectorRegistry) -> None:
        self.session_start_seconds = Histogram(
            "streamspace_session_start_seconds",
            "Start or wake command issued -> the agent reported the session running.",
            ["kind"],
            buckets=(0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
            registry=r,
        )
        self.agent_drains = Counter(
            "streamspace_agent_drains_total",
            "Agent connections this replica closed while shutting down (sent to reconnect"
            " to another replica).",
            registry=r,
        )
        self.stream_resumes = Counter(
            "streamspace_stream_resumes_total",
            "Viewer streams whose agent moved while the viewer's socket stayed here, by"
            " outcome: resumed where they stopped, or not (the viewer reconnects).",
            ["outcome"],
            registry=r,
        )
        self.database_up = Gauge(
            "streamspace_database_up",
            "1 when this replica's last scrape read the database, else 0 (the agent and"
            " session gauges then keep their last values).",
            registry=r,
        )
        self.shutting_down = Gauge(
            "streamspace_shutting_down",
            "1 while this replica is shutting down.",
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "streamspace_webhook_deliveries_total",
            "Webhook delivery attempts this replica made, by result: delivered (2xx), retry"
            " (failed, tried again later) or failed (out of attempts).",
            ["result"],
            registry=r,
        )
        for result in ("delivered", "retry", "failed"):
            self.webhook_deliveries.labels(result=result)
        for kind in START_KINDS.values():
            self.session_start_seconds.labels(kind=kind)
        for outcome in ("resumed", "failed"):
            self.stream_resumes.labels(outcome=outcome)

    @contextmanager
    def viewer(self, path: str) -> Iterator[StreamMeter]:
        """Count one open viewer stream on `path` while the block runs."""
        gauge = self.viewers.labels(path=path)
        gauge.inc()
        try:
            yield StreamMeter(
                to_viewer=self.stream_bytes.labels(direction="to_viewer", path=path),
                to_agent=self.stream_bytes.labels(direction="to_agent", path=path),
            )
        finally:
            gauge.dec()

    def count_outcome(
        self, action: str | None, *, failed: bool, seconds: float | None = None
    ) -> None:
        """Count the final outcome of a start or wake command (each applied once); `seconds`
        from the command being issued to this outcome feeds the start latency on success."""
        kind = START_KINDS.get(action or "")
        if kind is None:
            return
        self.session_starts.inc()
        if failed:
            self.session_start_failures.inc()
        elif seconds is not None:
            self.session_start_seconds.labels(kind=kind).observe(max(seconds, 0.0))

    async def refresh(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        liveness: float,
        local_agents: int,
        redis_connected: bool | None = None,
    ) -> None:
        if redis_connected is not None:
            self.redis_connected.labels(db="agenthub").set(1 if redis_connected else 0)
        self.agents_local.set(local_agents)
        try:
            async with asyncio.timeout(DB_TIMEOUT):
                await self._read_fleet(sessions=sessions, liveness=liveness)
        except (DBAPIError, OSError, TimeoutError) as exc:
            # The scrape still answers: a dashboard shows the outage instead of a gap.
            log.warning("metrics: cannot read the database: %s", exc)
            self.database_up.set(0)
        else:
            self.database_up.set(1)

    async def _read_fleet(
        self, *, sessions: async_sessionmaker[AsyncSession], liveness: float
    ) -> None:
        since = datetime.now(UTC) - timedelta(seconds=liveness)
        async with sessions() as db:
            online = await db.scalar(
                select(func.count())
                .select_from(AgentRecord)
                .where(AgentRecord.status == "online", AgentRecord.last_heartbeat >= since)
            )
            rows = await db.execute(
                select(SessionRecord.agent_id, func.count())
                .where(SessionRecord.state.in_(ACTIVE_STATES))
                .group_by(SessionRecord.agent_id)
            )
        self.agents_connected.set(online or 0)
        self.sessions_active.clear()
        for agent_id, count in rows.all():
            self.sessions_active.labels(agent_id=agent_id or "unassigned").set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
