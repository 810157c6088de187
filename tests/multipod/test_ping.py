"""`POST /api/v1/admin/agents/{id}/ping` on two replicas: a pong comes back whether the agent
is on the replica asked (local) or on the other one (cross-pod, over Redis); an agent that is
not connected is a 503, an unknown one a 404, and one that does not answer a 504."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis.asyncio as redis
from websockets.asyncio.client import ClientConnection

from tests.multipod.test_agent_protocol import connect, frame
from tests.multipod.test_routing import collect_events
from tests.support.cluster import cluster, enroll_agent, eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def answer_pings(ws: ClientConnection, seen: list[str]) -> None:
    async for raw in ws:
        envelope = json.loads(raw)
        if envelope["type"] == "ping":
            seen.append(envelope["id"])
            await ws.send(frame("pong", {"pingId": envelope["id"]}))


async def test_ping_round_trips_locally_and_across_replicas(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=2, lb=False) as c:
        a, b = c.replicas
        admin = await c.token(a.url)
        key = await enroll_agent(a.url, admin, "pinged-1")
        silent_key = await enroll_agent(a.url, admin, "silent-1")
        ws = await connect(b.url, key)
        await ws.recv()  # welcome
        seen: list[str] = []
        responder = asyncio.create_task(answer_pings(ws, seen))
        path = "/api/v1/admin/agents/pinged-1/ping"
        local = await c.call(b.url, "POST", path, admin)
        assert local.status_code == 200, local.text
        assert local.json()["route"] == "local" and local.json()["replica"] == b.pod
        remote = await c.call(a.url, "POST", path, admin)
        assert remote.status_code == 200, remote.text
        assert remote.json()["route"] == "cross_pod" and remote.json()["replica"] == a.pod
        assert len(seen) == 2 and remote.json()["rttMs"] > 0

        unknown = await c.call(a.url, "POST", "/api/v1/admin/agents/nobody/ping", admin)
        assert unknown.status_code == 404
        # registered but not connected anywhere yet: 503
        offline = await c.call(a.url, "POST", "/api/v1/admin/agents/silent-1/ping", admin)
        assert offline.status_code == 503
        assert offline.json()["error"]["code"] == "agent_offline"

        silent = await connect(b.url, silent_key)
        await silent.recv()
        for base in (a.url, b.url):
            r = await c.call(base, "POST", "/api/v1/admin/agents/silent-1/ping?timeout=0.5", admin)
            assert r.status_code == 504, r.text
            assert r.json()["error"]["code"] == "ping_timeout"
        # many at once: one answer per agent, in order, failures named instead of failing all
        many = await c.call(
            a.url,
            "POST",
            "/api/v1/admin/agents/ping?timeout=0.5",
            admin,
            json={"agents": ["pinged-1", "nobody", "silent-1", "pinged-1"]},
        )
        assert many.status_code == 200, many.text
        results = many.json()["results"]
        assert [r["agentId"] for r in results] == ["pinged-1", "nobody", "silent-1", "pinged-1"]
        assert results[0]["route"] == "cross_pod" and results[3]["route"] == "cross_pod"
        assert results[1]["error"]["code"] == "not_found"
        assert results[2]["error"]["code"] == "ping_timeout"
        assert len(seen) == 4
        empty = await c.call(a.url, "POST", "/api/v1/admin/agents/ping", admin, json={"agents": []})
        assert empty.status_code == 422
        # only admins may ping
        r = await c.call(a.url, "POST", path, {})
        assert r.status_code == 401
        responder.cancel()
        await ws.close()
        await silent.close()


async def test_an_agent_that_moves_is_reached_on_its_new_replica_at_once(tmp_path: Path) -> None:
    """Replicas remember where an agent is (one Redis lookup instead of one per command); when
    a newer connection of the agent displaces the old one on another replica, the next ping
    already goes to the new replica, and an agent that left altogether is reported offline."""
    async with cluster(tmp_path, replicas=3, lb=False) as c:
        a, b, third = c.replicas
        admin = await c.token(a.url)
        key = await enroll_agent(a.url, admin, "mover-1")
        path = "/api/v1/admin/agents/mover-1/ping?timeout=2"
        seen: list[str] = []
        sockets, responders = [], []
        for epoch, home in enumerate((b, third, b), start=1):
            ws = await connect(home.url, key, epoch=epoch)  # displaces the previous one
            await ws.recv()  # welcome
            sockets.append(ws)
            responders.append(asyncio.create_task(answer_pings(ws, seen)))
            r = await c.call(a.url, "POST", path, admin)
            assert r.status_code == 200, (home.pod, r.text)
            assert r.json()["route"] == "cross_pod"
        assert len(seen) == 3
        # Replica B announces the agent's departure (`detached`) before its offline event, on
        # the same Redis connection, and A reads both from one subscription in order: A's
        # admin socket showing the offline event means A has heard the departure.
        events: list[dict[str, object]] = []
        watcher = asyncio.create_task(
            collect_events(a.url.replace("http", "ws"), admin["Authorization"].split()[1], events)
        )

        async def hello() -> bool:
            return bool(events)

        await eventually(hello, interval=0.05, what="A's events socket")
        await sockets[-1].close()

        async def offline() -> bool:
            agents = (await c.call(a.url, "GET", "/api/v1/agents", admin)).json()
            return any(x["id"] == "mover-1" and x["status"] == "offline" for x in agents)

        async def a_heard_it_leave() -> bool:
            agents = [e["data"] for e in events if e.get("kind") == "agent"]
            return any(x["id"] == "mover-1" and x["status"] == "offline" for x in agents)  # type: ignore[index]

        await eventually(offline, what="mover-1 offline")
        await eventually(a_heard_it_leave, interval=0.05, what="mover-1's offline event on A")
        watcher.cancel()
        # Gone: replica A heard it leave (`detached`), so it answers itself, at once, instead
        # of asking the replica it last knew (which would answer "not connected to replica").
        r = await c.call(a.url, "POST", path, admin)
        assert r.status_code == 503 and r.json()["error"] == {
            "code": "agent_offline",
            "message": "agent mover-1 is not connected",
        }, r.text
        for responder in responders:
            responder.cancel()


async def test_a_command_sent_on_a_stale_route_is_forwarded_to_the_agents_replica(
    tmp_path: Path,
) -> None:
    """A replica can publish a command to the replica that held the agent when it looked, just
    as the agent moves. That replica sends it on to the one Redis names now, at once, instead
    of leaving it to the sweeper's resend. (The command here exists only on the bus, so
    nothing but the forward can deliver it.)"""
    async with cluster(tmp_path, replicas=3, lb=False) as c:
        a, b, third = c.replicas
        admin = await c.token(a.url)
        key = await enroll_agent(a.url, admin, "moved-1")
        ws = await connect(third.url, key, epoch=1)
        assert json.loads(await ws.recv())["type"] == "welcome"
        command = {"commandId": "stale-route-1", "action": "stop_session", "spec": {}}
        stale = {"agent_id": "moved-1", "commands": [command], "sent": 0, "origin": a.pod}
        assert c.redis is not None
        async with redis.Redis(port=c.redis.port) as r:
            assert await r.publish(f"pod:{b.pod}:commands", json.dumps(stale)) == 1
        async with asyncio.timeout(10):
            while (envelope := json.loads(await ws.recv()))["type"] != "command":
                pass
        assert envelope["payload"]["commandId"] == "stale-route-1"
        forwarded = f"Forwarded 1 command(s) for agent moved-1 to pod:{third.pod}:commands"

        async def logged() -> bool:  # b logs once its publish returns: maybe after delivery
            return forwarded in b.log()

        await eventually(logged, timeout=10, what="the forward logged on the stale replica")
        await ws.close()
