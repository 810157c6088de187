"""deploy/compose as a user runs it: `up.sh` starts the whole guide topology (haproxy, three
control-plane replicas, the UI, Redis, PostgreSQL behind PgBouncer, two HA agents) from the
locally built images, `verify.sh` passes every one of the guide's checks against it, and
`down.sh --volumes` leaves nothing behind. Its own project name, ports, agent and sessions
network, so it runs beside a user's stack and other tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.docker import unavailable

pytestmark = [pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose"
BUILD_TIMEOUT = 1800  # s: a first build on a busy 2-core machine (debootstrap, npm ci, apt)
UP_TIMEOUT = 600  # s: up.sh's own health waits are bounded by STREAMSPACE_COMPOSE_TIMEOUT
VERIFY_TIMEOUT = 400  # s: verify.py bounds each of its waits (a session's start: 180 s)
PORTS = ("UI_PORT", "LB_PORT", "API_1_PORT", "API_2_PORT", "API_3_PORT", "REDIS_HOST_PORT")


def free_ports(count: int) -> list[int]:
    """Ports free on this host now (held open together, so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run(
    script: str, *args: str, env_file: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STREAMSPACE_COMPOSE_ENV": str(env_file)}
    return subprocess.run(
        [str(COMPOSE / script), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def leftovers(project: str, agent_id: str) -> list[str]:
    """Containers, volumes and networks of the stack or of its agent's sessions."""
    found = []
    for kind in ("container", "volume", "network"):
        for label in (f"com.docker.compose.project={project}", f"streamspace.agent={agent_id}"):
            listing = ["docker", kind, "ls", "-q", "--filter", f"label={label}"]
            if kind == "container":
                listing.insert(3, "-a")
            done = subprocess.run(listing, capture_output=True, text=True, check=False)
            found += [f"{kind} {name}" for name in done.stdout.split()]
    return found


@pytest.fixture(scope="module")
def images() -> None:
    """Every image the stack runs, built by images/build.sh (up-to-date ones are skipped)."""
    if shutil.which("docker-compose") is None:
        unavailable("docker-compose not installed (scripts/test-services.sh installs it)")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        unavailable("Docker engine not reachable")
    if os.geteuid() != 0:
        unavailable("images/build.sh needs root (debootstrap)")
    build = subprocess.run(
        [str(REPO / "images" / "build.sh"), "stack"],
        capture_output=True,
        text=True,
        check=False,
        timeout=BUILD_TIMEOUT,
    )
    assert build.returncode == 0, f"images/build.sh stack failed:\n{build.stderr[-3000:]}"


@pytest.fixture
def env_file(tmp_path: Path, images: None) -> Iterator[Path]:
    """A stack of this test's own: env file with a unique project, agent, network and ports;
    the stack is taken down with its volumes and sessions whatever happened."""
    tag = uuid.uuid4().hex[:8]
    path = tmp_path / "stack.env"
    settings = {
        "COMPOSE_PROJECT_NAME": f"sstest{tag}",
        "BIND_ADDRESS": "127.0.0.1",
        "AGENT_ID": f"compose-test-{tag}",
        "SESSIONS_NETWORK": f"streamspace-test-{tag}",
        **dict(zip(PORTS, map(str, free_ports(len(PORTS))), strict=True)),
    }
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    try:
        yield path
    finally:
        down = run("down.sh", "--volumes", env_file=path, timeout=300)
        assert down.returncode == 0, f"down.sh --volumes failed:\n{down.stderr[-3000:]}"
        left = leftovers(settings["COMPOSE_PROJECT_NAME"], settings["AGENT_ID"])
        assert not left, f"down.sh --volumes left {left}"


@pytest.mark.timeout(BUILD_TIMEOUT + UP_TIMEOUT + VERIFY_TIMEOUT)
def test_the_stack_comes_up_and_passes_the_guide_verification(env_file: Path) -> None:
    started = time.monotonic()
    up = run("up.sh", "--no-build", env_file=env_file, timeout=UP_TIMEOUT)
    assert up.returncode == 0, f"up.sh failed:\n{up.stderr[-4000:]}"
    up_took = time.monotonic() - started
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert env["AGENT_API_KEY"], "up.sh provisioned no agent key"
    assert env_file.stat().st_mode & 0o077 == 0, "the env file holds secrets: mode 0600"

    verify = run("verify.sh", env_file=env_file, timeout=VERIFY_TIMEOUT)
    report = verify.stdout
    assert verify.returncode == 0, f"verify.sh failed:\n{report}\n{verify.stderr[-2000:]}"
    assert "FAIL" not in report and report.rstrip().endswith("ALL CHECKS PASSED"), report
    print(f"up.sh: {up_took:.0f} s, verify.sh: {time.monotonic() - started - up_took:.0f} s")

    # A second up.sh keeps the secrets and the key, and finds everything running.
    again = run("up.sh", "--no-build", env_file=env_file, timeout=UP_TIMEOUT)
    assert again.returncode == 0, f"second up.sh failed:\n{again.stderr[-4000:]}"
    kept = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert kept == env
