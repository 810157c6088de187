"""The guide's Test 1 as viewers feel it: the replica holding the agent is killed (SIGKILL) or
drained (SIGTERM) while a viewer on another replica reads a session's pattern stream and a
client takes sessions through their life on that replica. The agent reconnects through the
shipped haproxy config and the viewer's replica resumes the stream wherever the agent is now:
the viewer's socket never closes and every byte arrives once, in order (a reopened stream
would start the pattern again, and its new handshake needs a new socket). No request to a
surviving replica fails and every command is applied exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.support.cluster import cluster, eventually
from tests.support.metrics import scrape, value
from tests.support.pattern import pattern_source
from tests.support.traffic import Traffic, progress, session_loop

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.parametrize(
    ("sig", "replicas"),
    [
        (signal.SIGKILL, 2),  # the agent comes back to the viewer's replica: resumed locally
        (signal.SIGTERM, 3),  # drained: the agent goes to either survivor, here or a peer
    ],
    ids=["sigkill", "sigterm"],
)
async def test_the_viewers_stream_goes_on_when_its_agent_moves(
    tmp_path: Path, sig: signal.Signals, replicas: int
) -> None:
    async with (
        pattern_source() as vnc_port,
        cluster(tmp_path, replicas=replicas, shipped_lb=True) as c,
    ):
        assert c.lb is not None
        admin = await c.token(c.lb.url)
        journal = tmp_path / "journal.txt"
        c.agent(
            "resumed",
            url=c.lb.url,
            extra={
                "MEMORY_PLATFORM": f"vnc=127.0.0.1:{vnc_port}",
                "MEMORY_PLATFORM_JOURNAL": str(journal),
            },
        )
        await c.approve("resumed", admin)
        holder = c.replica((await c.wait_online("resumed", admin))["pod_name"])
        r = await c.call(c.lb.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
        assert r.status_code == 202, r.text
        sid = r.json()["id"]
        await c.wait_state(sid, "running", admin)

        watcher = next(r for r in c.replicas if r is not holder)
        traffic = Traffic()
        users = [
            # through the viewer's replica: commands cross to the agent's replica, then, once
            # it has moved, go wherever it is (a request in flight on the killed replica
            # itself has no answer to give; bench/replica_loss.py measures that path)
            asyncio.create_task(session_loop(watcher.url, admin, traffic)),
            asyncio.create_task(traffic.view(watcher.url, sid, admin)),
        ]
        try:
            await progress(traffic, users, "before the move")
            holder.send_signal(sig)
            survivors = {r.pod for r in c.replicas if r is not holder}

            async def moved() -> bool:
                online = await c.wait_online("resumed", admin)
                return online["pod_name"] in survivors

            await eventually(moved, timeout=30, what="the agent on a surviving replica")
            await progress(traffic, users, "after the move", viewed=2 << 20)
        finally:
            traffic.stop.set()
            await asyncio.gather(*users)

        viewer = traffic.viewers[0]
        assert not viewer.drops, f"the viewer's socket closed: {dict(viewer.drops)}"
        assert "resuming at byte" in watcher.log()
        resumes = await scrape(watcher.url)
        assert value(resumes, "streamspace_stream_resumes_total", outcome="resumed") >= 1
        assert value(resumes, "streamspace_stream_resumes_total", outcome="failed") == 0

        assert set(traffic.outcomes) == {"create 202", "delete 202"}, traffic.outcomes
        for done in traffic.sessions:
            await c.wait_state(done, "terminated", admin)
        applied = Counter(tuple(line.split()) for line in journal.read_text().splitlines())
        for done in traffic.sessions:  # no command lost, none applied twice
            assert applied[("start", done)] == 1 and applied[("stop", done)] == 1, done
