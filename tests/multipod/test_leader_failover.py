"""The guide's Test 2 with users working: the agent's leader is killed (SIGKILL) while a client
takes sessions through their life and a viewer reads a running session's pattern stream, all
through the shipped haproxy config. The standby takes the lease and connects; what the old
leader was asked and had not finished is sent to it again. The viewer's stream cannot be
resumed (its VNC connection died with the old leader's process), so its socket closes and it
opens a new stream by itself. Nothing a user did fails: every request is answered 202, every
session starts and stops exactly once, the viewed session keeps running and is viewed again."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, cluster, file_elected
from tests.support.pattern import pattern_source
from tests.support.processes import ApiReplica, Proc
from tests.support.traffic import Traffic, progress, session_loop

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def _leader_and_standby(
    c: Cluster, admin: dict[str, str], agent_id: str, *, tmp_path: Path, vnc_port: int
) -> tuple[Proc, Proc, ApiReplica]:
    """An agent elected through a lock file (short lease), on the memory platform streaming
    the pattern and journaling what it applies: its leader online (and the replica holding
    it), its standby campaigning."""
    ha = file_elected(
        tmp_path,
        MEMORY_PLATFORM=f"vnc=127.0.0.1:{vnc_port}",
        MEMORY_PLATFORM_JOURNAL=str(tmp_path / "journal.txt"),
    )
    leader = c.agent(agent_id, extra={**ha, "POD_NAME": "replica-1"})
    await c.approve(agent_id, admin)
    holder = c.replica((await c.wait_online(agent_id, admin))["pod_name"])
    await leader.logged("became leader")
    standby = c.agent(agent_id, extra={**ha, "POD_NAME": "replica-2"})
    await standby.logged("leader election: campaigning")
    return leader, standby, holder


async def test_the_agent_leader_dies_while_users_work(tmp_path: Path) -> None:
    async with (
        pattern_source() as vnc_port,
        cluster(tmp_path, replicas=2, shipped_lb=True) as c,
    ):
        assert c.lb is not None
        admin = await c.token(c.lb.url)
        leader, standby, _ = await _leader_and_standby(
            c, admin, "led", tmp_path=tmp_path, vnc_port=vnc_port
        )
        r = await c.call(c.lb.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
        assert r.status_code == 202, r.text
        viewed = r.json()["id"]
        await c.wait_state(viewed, "running", admin)

        traffic = Traffic()
        users = [
            asyncio.create_task(session_loop(c.lb.url, admin, traffic)),
            asyncio.create_task(traffic.view(c.lb.url, viewed, admin)),
        ]
        try:
            await progress(traffic, users, "before the failover")
            leader.kill()
            await standby.logged("became leader", timeout=30)
            await progress(traffic, users, "after the failover", timeout=90)
        finally:
            traffic.stop.set()
            await asyncio.gather(*users)

        assert set(traffic.outcomes) == {"create 202", "delete 202"}, traffic.outcomes
        for sid in traffic.sessions:
            await c.wait_state(sid, "terminated", admin)
        applied = Counter(
            tuple(line.split()) for line in (tmp_path / "journal.txt").read_text().splitlines()
        )
        for sid in traffic.sessions:  # no command lost, none applied twice
            assert applied[("start", sid)] == 1 and applied[("stop", sid)] == 1, sid
        assert applied[("start", viewed)] == 1  # adopted by the new leader, not started again
        assert await c.session_state(c.lb.url, viewed, admin) == "running"


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_a_session_asked_for_between_leaders_is_queued_not_refused(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """The standby is paused (SIGSTOP) when the leader dies or is stopped, so the gap before
    a new leader connects is as long as the test wants. A session asked for in that gap is
    accepted and queued, and starts once the standby leads: the agent was between leaders,
    not gone. Refusing it with 503 `no_agents_available` failed a user for a failover the
    platform is built to survive."""
    async with (
        pattern_source() as vnc_port,
        cluster(tmp_path, replicas=2, shipped_lb=True) as c,
    ):
        assert c.lb is not None
        admin = await c.token(c.lb.url)
        leader, standby, holder = await _leader_and_standby(
            c, admin, "gap", tmp_path=tmp_path, vnc_port=vnc_port
        )
        standby.send_signal(signal.SIGSTOP)
        try:
            assert leader.proc is not None
            leader.send_signal(stop)
            await asyncio.wait_for(asyncio.to_thread(leader.proc.wait), 30)
            await holder.logged("Agent disconnected: gap")
            r = await c.call(
                c.lb.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
            )
            assert r.status_code == 202, r.text
        finally:
            standby.send_signal(signal.SIGCONT)
        await standby.logged("became leader", timeout=30)
        await c.wait_state(r.json()["id"], "running", admin)
        journal = (tmp_path / "journal.txt").read_text().splitlines()
        assert journal.count(f"start {r.json()['id']}") == 1  # started once, by the new leader
