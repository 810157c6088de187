"""A viewer's stream rides through its agent moving: the agent's replica is killed (SIGKILL) or
drained (SIGTERM) while a viewer on another replica reads a session's pattern stream. The
agent reconnects through the shipped haproxy configuration; the viewer's replica resumes the
stream wherever the agent is now. The viewer's socket never closes and every byte arrives once,
in order: the stream goes on where it stopped (a reopened stream would start the pattern
again, and its new handshake would be a closed socket here)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.support.cluster import cluster, eventually
from tests.support.metrics import scrape, value
from tests.support.pattern import pattern_source, read_pattern
from tests.support.processes import ApiReplica

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


class Viewer:
    """What the viewer saw."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.viewed = 0
        self.drops: Counter[str] = Counter()

    def record(self, started: float, n: int, failed: str) -> None:
        self.viewed += n
        if failed:
            self.drops[failed] += 1


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
        c.agent("resumed", url=c.lb.url, extra={"MEMORY_PLATFORM": f"vnc=127.0.0.1:{vnc_port}"})
        await c.approve("resumed", admin)
        holder = c.replica((await c.wait_online("resumed", admin))["pod_name"])
        r = await c.call(c.lb.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
        assert r.status_code == 202, r.text
        sid = r.json()["id"]
        await c.wait_state(sid, "running", admin)

        watcher: ApiReplica = next(r for r in c.replicas if r is not holder)
        viewer = Viewer()
        reading = asyncio.create_task(
            read_pattern(watcher.url, sid, admin, stop=viewer.stop, record=viewer.record)
        )
        try:
            await _viewed_more(viewer, reading, 1 << 20, "before the move")
            holder.send_signal(sig)
            survivors = {r.pod for r in c.replicas if r is not holder}

            async def moved() -> bool:
                online = await c.wait_online("resumed", admin)
                return online["pod_name"] in survivors

            await eventually(moved, timeout=30, what="the agent on a surviving replica")
            await _viewed_more(viewer, reading, 2 << 20, "after the move")
        finally:
            viewer.stop.set()
            await asyncio.gather(reading)

        assert not viewer.drops, f"the viewer's socket closed: {dict(viewer.drops)}"
        assert "resuming at byte" in watcher.log()
        resumes = await scrape(watcher.url)
        assert value(resumes, "streamspace_stream_resumes_total", outcome="resumed") >= 1
        assert value(resumes, "streamspace_stream_resumes_total", outcome="failed") == 0


async def _viewed_more(viewer: Viewer, reading: asyncio.Task[None], more: int, when: str) -> None:
    """The viewer reads `more` bytes further (its failure shows as itself, not a timeout)."""
    target = viewer.viewed + more

    async def further() -> bool:
        if reading.done():
            reading.result()
        return viewer.viewed >= target

    await eventually(further, timeout=60, what=f"the viewer reading on {when}")
