"""Prometheus metrics of one replica, on its own registry (several apps may share a process in
tests). The guide's four names are exported exactly; gauges are refreshed at scrape time."""

from __future__ import annotations

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
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import AgentRecord, SessionRecord
from streamspace.control_plane.services.states import ACTIVE_STATES


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
            " streamspace_commands_dispatched_total{route=\"cross_pod\"}).",
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
        for route in ("local", "cross_pod"):
            self.commands_dispatched.labels(route=route)
        self.commands_failed.labels(reason="unreachable")

    def count_outcome(self, action: str | None, *, failed: bool) -> None:
        """Count the final outcome of a start or wake command (each applied once)."""
        if action not in ("start_session", "wake_session"):
            return
        self.session_starts.inc()
        if failed:
            self.session_start_failures.inc()

    async def refresh(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        liveness: float,
        local_agents: int,
        redis_connected: bool | None = None,
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
        if redis_connected is not None:
            self.redis_connected.labels(db="agenthub").set(1 if redis_connected else 0)
        self.agents_local.set(local_agents)
        self.sessions_active.clear()
        for agent_id, count in rows.all():
            self.sessions_active.labels(agent_id=agent_id or "unassigned").set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
