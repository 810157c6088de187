"""Failures with real processes: a replica SIGKILLed with commands in flight, and Redis
going away and coming back, without restarts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.support.cluster import cluster, eventually, file_elected
from tests.support.processes import RedisServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_killing_the_agents_replica_loses_nothing(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        admin = await c.token(c.replicas[0].url)
        journal = tmp_path / "journal.txt"
        agent = c.agent(
            "mem-ha-1",
            extra={"MEMORY_PLATFORM": "delay=1.5", "MEMORY_PLATFORM_JOURNAL": str(journal)},
        )
        await c.approve("mem-ha-1", admin)
        holder = (await c.wait_online("mem-ha-1", admin))["pod_name"]
        issuer = next(r for r in c.replicas if r.pod != holder)
        sids = []
        for _ in range(4):
            r = await c.call(
                issuer.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
            )
            assert r.status_code == 202, r.text
            sids.append(r.json()["id"])

        async def delivered() -> bool:
            # The agent acks a command as it begins it (`starting`); each start takes 1.5 s,
            # so the kill below finds them running on the agent (one already done must not
            # be applied again either).
            states = [await c.session_state(issuer.url, sid, admin) for sid in sids]
            return all(state in ("starting", "running") for state in states)

        await eventually(delivered, interval=0.05, what="the commands acknowledged by the agent")
        c.replica(holder).kill()

        new_holder = await eventually(
            lambda: _moved(c, admin, issuer.url, holder), timeout=30, what="agent reconnected"
        )
        assert new_holder != holder
        for sid in sids:
            await c.wait_state(sid, "running", admin, timeout=40)
        starts = Counter(
            line.split()[1] for line in journal.read_text().splitlines() if line.startswith("start")
        )
        assert starts == Counter({sid: 1 for sid in sids})  # each applied exactly once
        await agent.logged("reconnect")
        # the durable rows agree: every command completed once, none outstanding
        r = await c.call(issuer.url, "GET", "/api/v1/sessions", admin)
        assert {s["state"] for s in r.json()} == {"running"}


async def _moved(c, admin, base, old):  # type: ignore[no-untyped-def]
    for a in (await c.call(base, "GET", "/api/v1/agents", admin)).json():
        if a["status"] == "online" and a["pod_name"] not in (None, old):
            return a["pod_name"]
    return None


async def test_redis_outage_degrades_and_recovers(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=2, lb=False) as c:
        a, b = c.replicas
        admin = await c.token(a.url)
        c.agent("mem-redis-1", url=a.url)
        await c.approve("mem-redis-1", admin)
        await c.wait_online("mem-redis-1", admin, pod=a.pod)
        assert c.redis is not None
        c.redis.kill()
        await eventually(lambda: _logged(b, "AgentHub Redis unavailable"), what="B notices")
        await eventually(lambda: _logged(a, "AgentHub Redis unavailable"), what="A notices")

        local = await c.call(
            a.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
        )
        assert local.status_code == 202, local.text
        await c.wait_state(local.json()["id"], "running", admin)

        cross = await c.call(
            b.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
        )
        assert cross.status_code == 503
        assert cross.json()["error"]["code"] == "agent_unreachable"
        assert "Redis is unavailable" in cross.json()["error"]["message"]
        assert a.alive and b.alive
        assert (await c.call(b.url, "GET", "/health", {})).status_code == 200
        # still ready: a probe must not take every replica out during a Redis outage
        ready = await c.call(b.url, "GET", "/ready", {})
        assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text
        assert ready.json()["checks"]["redis"].startswith("failed")

        c.redis = RedisServer(log_dir=tmp_path, port=c.redis.port).start()
        connected = "AgentHub Redis connected - multi-pod support enabled"
        await eventually(lambda: _logged(b, connected, times=2), timeout=30, what="B rejoins")
        await eventually(lambda: _logged(a, connected, times=2), timeout=30, what="A rejoins")
        again = await c.call(
            b.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
        )
        assert again.status_code == 202, again.text
        await c.wait_state(again.json()["id"], "running", admin)


async def _logged(proc, needle: str, times: int = 1) -> bool:  # type: ignore[no-untyped-def]
    return proc.log().count(needle) >= times


async def test_commands_in_doubt_when_the_agent_leader_dies_are_finished_by_the_new_leader(
    tmp_path: Path,
) -> None:
    """The guide's Test 2 with commands in flight: the leader acknowledged them and died before
    reporting an outcome. The new leader gets them again when it connects and carries them out
    (the two replicas share one host, a shared memory-platform journal here, where a start the
    old leader had finished would be found running), so no session waits for the command
    deadline and none is started twice."""
    async with cluster(tmp_path, replicas=2) as c:
        admin = await c.token(c.replicas[0].url)
        journal = tmp_path / "journal.txt"
        ha = file_elected(tmp_path, MEMORY_PLATFORM_JOURNAL=str(journal))
        # the leader acknowledges each start and never finishes one: all are in doubt
        leader = c.agent(
            "mem-lead", extra={**ha, "POD_NAME": "replica-1", "MEMORY_PLATFORM": "hang=start"}
        )
        await c.approve("mem-lead", admin)
        await c.wait_online("mem-lead", admin)
        await leader.logged("became leader")
        standby = c.agent("mem-lead", extra={**ha, "POD_NAME": "replica-2"})
        await standby.logged("leader election: campaigning")
        sids = []
        for _ in range(3):
            r = await c.call(
                c.lb.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
            )
            assert r.status_code == 202, r.text
            sids.append(r.json()["id"])

        async def acknowledged() -> bool:  # the leader acks a start as it begins
            states = [await c.session_state(c.lb.url, sid, admin) for sid in sids]
            return all(state == "starting" for state in states)

        await eventually(acknowledged, interval=0.05, what="the starts acknowledged")
        leader.kill()
        await standby.logged("became leader", timeout=30)
        for sid in sids:  # the deadline (COMMAND_DEADLINE) is minutes away
            await c.wait_state(sid, "running", admin, timeout=30)
        starts = Counter(
            line.split()[1] for line in journal.read_text().splitlines() if line.startswith("start")
        )
        assert starts == Counter({sid: 1 for sid in sids})
