"""Real Docker for tests: the session image built once by images/build.sh, cleanup of what a
test's agent made, and a docker CLI helper. Skips without an engine unless services are required."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = "streamspace/terminal:bookworm"


def unavailable(reason: str) -> None:
    if os.environ.get("STREAMSPACE_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (STREAMSPACE_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def session_image() -> str:
    """The terminal image, built once by images/build.sh (a no-op when already built)."""
    if shutil.which("docker") is None:
        unavailable("docker CLI not installed")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        unavailable("Docker engine not reachable")
    build = subprocess.run(
        [str(REPO / "images" / "build.sh"), "base", "terminal"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if build.returncode != 0:
        unavailable(f"images/build.sh failed:\n{build.stderr[-2000:]}")
    return IMAGE


def cleanup(agent_id: str, network: str) -> None:
    label = f"label=streamspace.agent={agent_id}"
    for listing, remove in (
        (["docker", "ps", "-aq", "--filter", label], ["docker", "rm", "-f"]),
        (["docker", "volume", "ls", "-q", "--filter", label], ["docker", "volume", "rm", "-f"]),
    ):
        ids = subprocess.run(listing, capture_output=True, text=True, check=False).stdout.split()
        if ids:
            subprocess.run([*remove, *ids], capture_output=True, check=False)
    subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)


async def docker_cli(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"docker {' '.join(args)}: {err.decode()}"
    return out.decode()
