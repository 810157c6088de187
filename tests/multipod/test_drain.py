"""Scaling down loses nothing: SIGTERM to the replica holding an agent, behind the shipped
haproxy configuration (deploy/haproxy/haproxy.cfg), while clients keep calling the API. The
replica stops taking requests, finishes what it has, sends its agent away (which reconnects
to another replica at once, without backoff) and exits cleanly; every request is answered."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import cluster, eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_sigterm_drains_a_replica_without_losing_a_request(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=3, redis=True, lb=True, shipped_lb=True) as c:
        assert c.lb is not None
        admin = await c.token(c.lb.url)
        agent = c.agent("drained", url=c.lb.url)
        await c.approve("drained", admin)
        holder = c.replica((await c.wait_online("drained", admin))["pod_name"])

        outcomes: Counter[str] = Counter()
        stopping = asyncio.Event()

        async def client() -> None:
            async with httpx.AsyncClient(base_url=c.lb.url, timeout=15) as http:
                while not stopping.is_set():
                    try:
                        r = await http.get("/api/v1/templates", headers=admin)
                        outcomes[str(r.status_code)] += 1
                    except httpx.HTTPError as exc:
                        outcomes[type(exc).__name__] += 1

        clients = [asyncio.create_task(client()) for _ in range(4)]
        try:
            await eventually(lambda: _at_least(outcomes, 50), what="traffic flowing")
            assert holder.proc is not None
            holder.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(asyncio.to_thread(holder.proc.wait), 30)
            await agent.logged("going away; reconnecting now")
            moved = await c.wait_online("drained", admin)
            assert moved["pod_name"] != holder.pod
            served = sum(outcomes.values())
            await eventually(lambda: _at_least(outcomes, served + 50), what="traffic after")
        finally:
            stopping.set()
            await asyncio.gather(*clients)

    # uvicorn re-raises the signal once it has shut down gracefully: exit by SIGTERM (143)
    assert code in (0, -signal.SIGTERM), holder.log()[-2000:]
    assert "Application shutdown complete" in holder.log()
    assert set(outcomes) == {"200"}, outcomes  # not one request failed


async def _at_least(outcomes: Counter[str], n: int) -> bool:
    return sum(outcomes.values()) >= n


async def test_a_session_asked_for_while_its_agent_moves_is_queued_not_refused(
    tmp_path: Path,
) -> None:
    """The agent's replica drains while the agent is paused (SIGSTOP), so the gap before it
    reconnects elsewhere is as long as the test wants: a session created in that gap is
    accepted and queued (the agent was handed over, not lost), and runs once the agent is
    back. Refusing it with 503 `no_agents_available` would fail a user for a planned stop."""
    liveness = {"AGENT_HEARTBEAT_MISSED_LIMIT": "60"}  # the sweeper leaves it online for 60 s
    async with cluster(tmp_path, replicas=2, shipped_lb=True, extra_env=liveness) as c:
        assert c.lb is not None
        admin = await c.token(c.lb.url)
        agent = c.agent("handed-over", url=c.lb.url)
        await c.approve("handed-over", admin)
        holder = c.replica((await c.wait_online("handed-over", admin))["pod_name"])
        assert agent.proc is not None and holder.proc is not None
        agent.send_signal(signal.SIGSTOP)
        try:
            holder.send_signal(signal.SIGTERM)
            await asyncio.wait_for(asyncio.to_thread(holder.proc.wait), 30)
            r = await c.call(
                c.lb.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
            )
            assert r.status_code == 202, r.text
        finally:
            agent.send_signal(signal.SIGCONT)
        await c.wait_state(r.json()["id"], "running", admin)
