"""`streamspace agent` stops on SIGTERM in every state, also while it is still registering:
with the control plane unreachable, and while its registration waits for an admin's approval
(a Deployment's rollout or `docker stop` must not wait for the kill timeout)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.support.cluster import cluster
from tests.support.processes import Proc, agent_process, free_port

pytestmark = [pytest.mark.postgres]


async def stops_cleanly_on_sigterm(agent: Proc) -> None:
    assert agent.proc is not None
    agent.send_signal(signal.SIGTERM)
    # bounded, not timed: the process would otherwise retry for as long as it was told to
    code = await asyncio.wait_for(asyncio.to_thread(agent.proc.wait), 30)
    assert code == 0, agent.log()[-2000:]
    await agent.logged("stopped")  # its own last line, not a crash


async def test_sigterm_stops_an_agent_that_cannot_reach_the_control_plane(tmp_path: Path) -> None:
    agent = agent_process(
        agent_id="unreachable",
        url=f"http://127.0.0.1:{free_port()}",  # nothing listens
        log_dir=tmp_path,
        key_file=tmp_path / "unreachable.key",
        bootstrap_key="bootstrap-key-for-signal-tests-0123456",
    ).start()
    try:
        await agent.logged("control plane unreachable")
        await stops_cleanly_on_sigterm(agent)
    finally:
        agent.kill()


async def test_sigterm_stops_an_agent_waiting_for_approval(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=1, redis=False, lb=False) as c:
        agent = c.agent("awaiting-approval")
        await agent.logged("waiting for an admin to approve it")
        await stops_cleanly_on_sigterm(agent)
