"""deploy/compose as a user runs it: `up.sh` starts the whole guide topology (haproxy, three
control-plane replicas, the UI, Redis, PostgreSQL behind PgBouncer, two HA agents) from the
locally built images, `verify.sh` passes every one of the guide's checks against it, a fourth
replica added and removed under load costs no request, and `down.sh --volumes` leaves nothing
behind. Its own project name, ports, agent and sessions network, so it runs beside a user's
stack and other tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.support.docker import unavailable

pytestmark = [pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose"
BUILD_TIMEOUT = 1800  # s: a first build on a busy 2-core machine (debootstrap, npm ci, apt)
UP_TIMEOUT = 600  # s: up.sh's own health waits are bounded by STREAMSPACE_COMPOSE_TIMEOUT
VERIFY_TIMEOUT = 400  # s: verify.py bounds each of its waits (a session's start: 180 s)
SCALE_TIMEOUT = 120.0  # s: a replica's start and its first two health checks on a busy machine
PROBLEM_WORDS = ("ERROR", "Traceback", "Error:", "WARNING")
T = TypeVar("T")
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


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def wait_for(check: Callable[[], T | None], *, what: str, timeout: float = SCALE_TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def haproxy_status(env: dict[str, str]) -> dict[str, str]:
    """Server name -> status in haproxy's backend, from its runtime API (`show stat`)."""
    project = env["COMPOSE_PROJECT_NAME"]
    ask = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock');"
        " s.sendall(b'show stat\\n');"
        " print(b''.join(iter(lambda: s.recv(65536), b'')).decode())"
    )
    container = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
         "--filter", "label=com.docker.compose.service=haproxy"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    stat = subprocess.run(
        ["docker", "exec", container, "python3", "-c", ask],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = (line.split(",") for line in stat.splitlines())
    return {row[1]: row[17] for row in rows if len(row) > 17 and row[0] == "streamspace_api"}


def problems_logged(env_file: Path) -> str:
    """The replicas' and agents' log lines about errors, to tell why a check failed."""
    logs = run("compose.sh", "logs", "--no-color", env_file=env_file, timeout=60).stdout
    lines = [line for line in logs.splitlines() if any(w in line for w in PROBLEM_WORDS)]
    return "\n".join(lines[-60:])


class Load:
    """Requests through haproxy, one new connection each, until stopped: who answered, and
    every failure (an exception or a status other than 200)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered: Counter[str] = Counter()
        self.failures: list[str] = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with httpx.Client(timeout=10) as client:
                    r = client.get(self.url)
                if r.status_code == 200:
                    self.answered[r.json()["pod_name"]] += 1
                    self.count += 1
                else:
                    self.failures.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def scale_out_and_in_under_load(env_file: Path) -> None:
    """README *Scaling*: api-4 started joins haproxy and takes requests; stopped (SIGTERM)
    it leaves, and no request through haproxy fails meanwhile."""
    env = read_env(env_file)
    with Load(f"http://127.0.0.1:{env['LB_PORT']}/health") as load:
        added = run("compose.sh", "--profile", "scale-out", "up", "-d", "api-4",
                    env_file=env_file, timeout=300)  # fmt: skip
        assert added.returncode == 0, added.stderr[-2000:]
        wait_for(lambda: haproxy_status(env).get("api-4") == "UP", what="api-4 UP in haproxy")
        wait_for(lambda: load.answered["streamspace-api-4"], what="a request served by api-4")
        stopped = run("compose.sh", "stop", "api-4", env_file=env_file, timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]
        wait_for(lambda: haproxy_status(env).get("api-4") != "UP", what="api-4 out of haproxy")
        after = load.count
        wait_for(lambda: load.count >= after + 20, what="20 more requests answered")
    assert not load.failures, f"requests failed while scaling: {load.failures[:5]}"
    # haproxy balances by open connections (leastconn): a replica holding the agents'
    # WebSockets may answer none of these short requests, so no given original replica must
    assert load.answered["streamspace-api-4"] and len(load.answered) >= 2, load.answered


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
        network = settings["SESSIONS_NETWORK"]
        inspect = ["docker", "network", "inspect", network]
        if subprocess.run(inspect, capture_output=True, check=False).returncode == 0:
            left.append(f"network {network}")
        assert not left, f"down.sh --volumes left {left}"


@pytest.mark.timeout(BUILD_TIMEOUT + UP_TIMEOUT + VERIFY_TIMEOUT)
def test_the_stack_comes_up_and_passes_the_guide_verification(env_file: Path) -> None:
    started = time.monotonic()
    up = run("up.sh", "--no-build", env_file=env_file, timeout=UP_TIMEOUT)
    assert up.returncode == 0, f"up.sh failed:\n{up.stderr[-4000:]}"
    up_took = time.monotonic() - started
    env = read_env(env_file)
    assert env["AGENT_API_KEY"], "up.sh provisioned no agent key"
    assert env_file.stat().st_mode & 0o077 == 0, "the env file holds secrets: mode 0600"

    verify = run("verify.sh", env_file=env_file, timeout=VERIFY_TIMEOUT)
    report = verify.stdout
    assert verify.returncode == 0, (
        f"verify.sh failed:\n{report}\n{verify.stderr[-2000:]}\n{problems_logged(env_file)}"
    )
    assert "FAIL" not in report and report.rstrip().endswith("ALL CHECKS PASSED"), report
    print(f"up.sh: {up_took:.0f} s, verify.sh: {time.monotonic() - started - up_took:.0f} s")

    scale_out_and_in_under_load(env_file)

    # A second up.sh keeps the secrets and the key, and finds everything running.
    again = run("up.sh", "--no-build", env_file=env_file, timeout=UP_TIMEOUT)
    assert again.returncode == 0, f"second up.sh failed:\n{again.stderr[-4000:]}"
    assert read_env(env_file) == env
