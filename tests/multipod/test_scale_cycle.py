"""The guide's scale cycle, 3 -> 5 -> 3 replicas behind the shipped haproxy configuration, with
users working through it: a loop creating and deleting sessions through the load balancer, and
a viewer reading a stream. Scaling up starts two replicas the load balancer already lists;
scaling down drains two with SIGTERM, one of them the replica holding the agent. Nothing a user
did fails: every request is answered, every session starts and stops exactly once, and the
viewer gets every byte in order, back by itself whenever a drain closes its socket."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.support.cluster import cluster, eventually
from tests.support.metrics import scrape
from tests.support.pattern import pattern_source
from tests.support.processes import ApiReplica
from tests.support.traffic import Traffic, progress, session_loop

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_scaling_3_to_5_to_3_loses_no_request_command_or_byte(tmp_path: Path) -> None:
    async with (
        pattern_source() as vnc_port,
        cluster(tmp_path, replicas=3, shipped_lb=True, spares=2) as c,
    ):
        assert c.lb is not None
        admin = await c.token(c.lb.url)
        journal = tmp_path / "journal.txt"
        c.agent(
            "scaled",
            url=c.lb.url,
            extra={
                "MEMORY_PLATFORM": f"vnc=127.0.0.1:{vnc_port}",
                "MEMORY_PLATFORM_JOURNAL": str(journal),
            },
        )
        await c.approve("scaled", admin)
        await c.wait_online("scaled", admin)
        r = await c.call(c.lb.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
        viewed_sid = r.json()["id"]
        await c.wait_state(viewed_sid, "running", admin)

        traffic = Traffic()
        users = [
            asyncio.create_task(session_loop(c.lb.url, admin, traffic)),
            asyncio.create_task(traffic.view(c.lb.url, viewed_sid, admin)),
        ]
        try:
            await progress(traffic, users, "before scaling")
            added = await asyncio.to_thread(c.scale_up)  # 3 -> 5
            for replica in added:
                await eventually(lambda r=replica: _serves(r), what=f"{replica.pod} serving")
            await progress(traffic, users, "at five replicas")

            holder = c.replica((await c.wait_online("scaled", admin))["pod_name"])
            drained = [holder, next(r for r in c.replicas if r is not holder)]
            for replica in drained:  # 5 -> 3
                replica.send_signal(signal.SIGTERM)
            for replica in drained:
                assert replica.proc is not None
                code = await asyncio.wait_for(asyncio.to_thread(replica.proc.wait), 30)
                assert code in (0, -signal.SIGTERM), replica.log()[-2000:]

            async def moved() -> bool:
                online = await c.wait_online("scaled", admin)
                return online["pod_name"] not in {r.pod for r in drained}

            await eventually(moved, what="the agent on a remaining replica")
            await progress(traffic, users, "after draining two")
        finally:
            traffic.stop.set()
            await asyncio.gather(*users)

        assert set(traffic.outcomes) == {"create 202", "delete 202"}, traffic.outcomes
        live = next(r for r in c.replicas if r.alive)
        for sid in traffic.sessions:
            await c.wait_state(sid, "terminated", admin)
        applied = Counter(tuple(line.split()) for line in journal.read_text().splitlines())
        for sid in traffic.sessions:  # no command lost, none applied twice
            assert applied[("start", sid)] == 1 and applied[("stop", sid)] == 1, sid
        assert await c.session_state(live.url, viewed_sid, admin) == "running"


async def _serves(replica: ApiReplica) -> bool:
    """The replica has answered session requests (it is in the load balancer's rotation)."""
    samples = await scrape(replica.url)
    return any(
        name == "streamspace_http_request_duration_seconds_count"
        and "sessions" in dict(labels).get("route", "")
        and count > 0
        for (name, labels), count in samples.items()
    )
