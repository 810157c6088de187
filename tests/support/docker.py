"""Real Docker for tests: the session image built once by images/build.sh, cleanup of what a
test's agent made, and a docker CLI helper. Skips without an engine unless services are required."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamspace.agents.platforms.docker_model import HOOKS, chain_name, session_network

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


@pytest.fixture
async def agent_names(session_image: str) -> AsyncIterator[tuple[str, str]]:
    """A fresh agent id and its sessions' network name; all the agent made is removed after."""
    agent_id = f"test-{uuid.uuid4().hex[:10]}"
    network = f"streamspace-test-{agent_id}"
    try:
        yield agent_id, network
    finally:
        await asyncio.to_thread(cleanup, agent_id, network)


def cleanup(agent_id: str, network: str) -> None:
    """Remove what agent `agent_id` made: its containers, volumes, and the sessions' networks
    named `network` (with or without egress) with their seal chains."""
    remove_labelled(f"streamspace.agent={agent_id}", network=network)


def remove_labelled(label_filter: str, *, network: str) -> None:
    """Remove the containers and volumes with the label `label_filter` (`key=value`), and
    the sessions' networks `network` and its no-egress twin, seal chains included."""
    label = f"label={label_filter}"
    for listing, remove in (
        (["docker", "ps", "-aq", "--filter", label], ["docker", "rm", "-f"]),
        (["docker", "volume", "ls", "-q", "--filter", label], ["docker", "volume", "rm", "-f"]),
    ):
        ids = subprocess.run(listing, capture_output=True, text=True, check=False).stdout.split()
        if ids:
            subprocess.run([*remove, *ids], capture_output=True, check=False)
    for name in (network, session_network(network, egress=False)):
        remove_network(name)


def remove_network(name: str) -> None:
    """Remove a sessions' network and the agent's iptables chain sealing it, if any."""
    inspect = ["docker", "network", "inspect", "-f", "{{.Id}}", name]
    found = subprocess.run(inspect, capture_output=True, text=True, check=False)
    subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)
    if found.returncode == 0:
        remove_chain(chain_name(found.stdout.strip()))


def remove_chain(chain: str) -> None:
    """Drop one seal chain and the jumps to it (test cleanup, beside the agent's own code)."""
    for hook in HOOKS:
        listing = subprocess.run(
            ["iptables", "-w", "-S", hook], capture_output=True, text=True, check=False
        )
        for line in listing.stdout.splitlines():
            words = shlex.split(line)
            if words[-2:] == ["-j", chain]:
                subprocess.run(["iptables", "-w", "-D", *words[1:]], check=False)
    subprocess.run(["iptables", "-w", "-F", chain], capture_output=True, check=False)
    subprocess.run(["iptables", "-w", "-X", chain], capture_output=True, check=False)


async def docker_cli(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"docker {' '.join(args)}: {err.decode()}"
    return out.decode()
