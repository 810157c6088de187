"""The agent's liveness file: touched while the loop runs, judged fresh or stale by age."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from typer.testing import CliRunner

from streamspace.agents.liveness import MAX_AGE, is_alive, keep_alive
from streamspace.cli import app


async def test_keep_alive_touches_the_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "alive"
    with contextlib.suppress(TimeoutError):  # the first touch, then a long sleep, cancelled
        await asyncio.wait_for(keep_alive(path, interval=60), timeout=1)
    assert is_alive(path)
    assert not is_alive(path, now=time.time() + MAX_AGE + 1)


def test_missing_file_is_not_alive(tmp_path: Path) -> None:
    assert not is_alive(tmp_path / "never-touched")


def test_agent_health_command_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "alive"
    runner = CliRunner()
    stale = runner.invoke(app, ["agent-health"], env={"AGENT_ALIVE_FILE": str(path)})
    assert stale.exit_code == 1
    path.touch()
    fresh = runner.invoke(app, ["agent-health"], env={"AGENT_ALIVE_FILE": str(path)})
    assert fresh.exit_code == 0, fresh.output
