"""Three real replicas sharing PostgreSQL and Redis: an agent on replica B gets commands issued
through replica A, and the owner's UI socket on replica C sees every state change."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
import websockets

from tests.support.cluster import cluster, eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def collect_events(url: str, token: str, sink: list[dict[str, object]]) -> None:
    """Read the events socket at `url` (ws://…), opened with a ticket for the login `token`."""
    async with httpx.AsyncClient(base_url=url.replace("ws", "http", 1), timeout=10) as http:
        r = await http.post("/api/v1/events/ticket", headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()
    async with websockets.connect(url + r.json()["url"]) as ws:
        async for frame in ws:
            sink.append(json.loads(frame))


async def test_cross_pod_command_routing_and_events(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        a, b, cc = c.replica("api-a"), c.replica("api-b"), c.replica("api-c")
        admin = await c.token(a.url)
        journal = tmp_path / "journal.txt"
        c.agent("mem-agent-1", url=b.url, extra={"MEMORY_PLATFORM_JOURNAL": str(journal)})
        await c.approve("mem-agent-1", admin)
        info = await c.wait_online("mem-agent-1", admin, pod="api-b")
        assert info["approval_status"] == "approved"
        key_file = tmp_path / "mem-agent-1.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        await b.logged(
            "[AgentHub] Agent registered: mem-agent-1 (platform: memory, region: default)"
        )
        # Peers find each replica's internal address in Redis, kept alive by a TTL.
        assert c.redis is not None
        async with redis.Redis(port=c.redis.port, db=1) as r:  # the hub's Redis DB
            for replica in (a, b, cc):
                key = f"streamspace:replica:{replica.pod}"
                assert (await r.get(key)) == replica.url.encode()
                assert 0 < await r.ttl(key) <= 30

        r = await c.call(
            a.url,
            "POST",
            "/api/v1/users",
            admin,
            json={"username": "ursula", "password": "ursula-pass-1"},
        )
        assert r.status_code == 201
        user = await c.token(cc.url, "ursula", "ursula-pass-1")
        events: list[dict[str, object]] = []
        listener = asyncio.create_task(
            collect_events(cc.url.replace("http", "ws"), user["Authorization"].split()[1], events)
        )
        await eventually(lambda: _async(len(events) > 0), what="events socket hello")

        created = await c.call(
            a.url, "POST", "/api/v1/sessions", user, json={"template": "terminal"}
        )
        assert created.status_code == 202, created.text
        sid = created.json()["id"]
        await c.wait_state(sid, "running", user)
        assert "Published command" in a.log()

        for action, state in (("hibernate", "hibernated"), ("resume", "running")):
            r = await c.call(a.url, "POST", f"/api/v1/sessions/{sid}/{action}", user)
            assert r.status_code == 202, r.text
            await c.wait_state(sid, state, user)
        assert (await c.call(cc.url, "DELETE", f"/api/v1/sessions/{sid}", user)).status_code == 202
        await c.wait_state(sid, "terminated", user)

        def seen() -> list[object]:
            return [e["data"]["state"] for e in events if e.get("kind") == "session"]  # type: ignore[index]

        await eventually(lambda: _async(seen()[-1:] == ["terminated"]), what="terminated event")
        states = seen()
        for expected in (
            "pending",
            "starting",
            "running",
            "hibernating",
            "hibernated",
            "waking",
            "terminating",
            "terminated",
        ):
            assert expected in states, (expected, states)
        listener.cancel()
        ops = journal.read_text().split()
        assert ops == ["start", sid, "hibernate", sid, "wake", sid, "stop", sid]

        # each cross-pod command is counted where it arrived and where it was delivered
        counts = {r.pod: await cross_pod_counts(c.call, r.url) for r in (a, b, cc)}
        assert counts["api-a"]["received"] >= 3 and counts["api-c"]["received"] >= 1
        assert counts["api-b"]["delivered"] >= 4 and counts["api-b"]["received"] == 0
        assert counts["api-a"]["delivered"] == counts["api-c"]["delivered"] == 0


async def cross_pod_counts(call, base: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    text = (await call(base, "GET", "/api/v1/metrics", {})).text
    counts = {"received": 0.0, "delivered": 0.0}
    for line in text.splitlines():
        for side in counts:
            if line.startswith(f'streamspace_cross_pod_commands_total{{side="{side}"}}'):
                counts[side] = float(line.rsplit(" ", 1)[1])
    return counts


async def _async(value: object) -> object:
    return value


async def test_metrics_overview_and_agent_events_on_every_replica(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=2, lb=False) as c:
        a, b = c.replicas
        admin = await c.token(a.url)
        r = await c.call(
            a.url,
            "POST",
            "/api/v1/users",
            admin,
            json={"username": "uma", "password": "uma-pass-1"},
        )
        assert r.status_code == 201
        user = await c.token(a.url, "uma", "uma-pass-1")
        admin_events: list[dict[str, object]] = []
        user_events: list[dict[str, object]] = []
        ws_url = b.url.replace("http", "ws")
        listeners = [
            asyncio.create_task(collect_events(ws_url, t["Authorization"].split()[1], sink))
            for t, sink in ((admin, admin_events), (user, user_events))
        ]
        await eventually(
            lambda: _async(bool(admin_events) and bool(user_events)), what="events hello"
        )

        c.agent("mem-agent-m", url=b.url)
        await c.approve("mem-agent-m", admin)
        await c.wait_online("mem-agent-m", admin)
        connections = 0.0
        for replica in c.replicas:
            text = (await c.call(replica.url, "GET", "/api/v1/metrics", {})).text
            assert "streamspace_agents_connected 1.0" in text
            assert 'streamspace_redis_connected{db="agenthub"} 1.0' in text
            connections += sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('streamspace_agent_connections_total{agent_id="mem-agent-m"}')
            )
            overview = (await c.call(replica.url, "GET", "/api/v1/admin/overview", admin)).json()
            assert overview["agents_connected"] == 1 and overview["agents_pending"] == 0
            assert len(overview["series"]) == 30
        assert connections == 1.0  # one connection, counted where it was accepted
        assert (await c.call(a.url, "GET", "/api/v1/admin/overview", user)).status_code == 403
        pods = (await c.call(a.url, "GET", "/api/v1/pods", admin)).json()
        assert {p["pod_name"] for p in pods} == {"api-a", "api-b"}
        assert sum(p["connected_agents"] for p in pods) == 1

        def agent_events() -> list[dict[str, object]]:
            return [e["data"] for e in admin_events if e.get("kind") == "agent"]  # type: ignore[misc]

        await eventually(
            lambda: _async(any(e.get("status") == "online" for e in agent_events())),
            what="agent online event",
        )
        approvals = [e.get("approval_status") for e in agent_events()]
        assert "pending" in approvals and "approved" in approvals, agent_events()
        assert not [e for e in user_events if e.get("kind") == "agent"]  # admins only
        for listener in listeners:
            listener.cancel()
