"""The platform images (control plane, UI, agent) built by images/build.sh and run on the local
Docker engine as a user would: the control plane answers /health and /ready as uid 10001, the
UI serves the app and proxies to the control plane as uid 101, the agent registers with a key
from `streamspace agents create`, or says plainly that the control plane is unreachable; each
container's own HEALTHCHECK turns healthy."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.support.docker import cleanup, unavailable

pytestmark = [pytest.mark.docker]

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1800  # s: a first build on a busy 2-core machine (debootstrap, npm ci, wheels)
DEADLINE = 90.0  # s: a container start and its first health checks on a busy machine
# The images' HEALTHCHECKs run every 15 s; the tests ask for every second to finish sooner.
FAST_HEALTH = ["--health-interval", "1s", "--health-start-period", "30s"]
ADMIN_PASSWORD = "admin-pass-123"


def _version() -> str:
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in pyproject.toml")


VERSION = _version()


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def wait_for(check: Callable[[], T | None], *, what: str, timeout: float = DEADLINE) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except (httpx.HTTPError, AssertionError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """The three images, built by images/build.sh (skipped by it when already up to date)."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        unavailable("Docker engine not reachable")
    if os.geteuid() != 0:
        unavailable("images/build.sh needs root (debootstrap)")
    started = time.monotonic()
    build = subprocess.run(
        [str(REPO / "images" / "build.sh"), "platform"],
        capture_output=True,
        text=True,
        check=False,
        timeout=BUILD_TIMEOUT,
    )
    assert build.returncode == 0, f"images/build.sh platform failed:\n{build.stderr[-3000:]}"
    print(f"images/build.sh platform: {time.monotonic() - started:.0f} s")
    return {name: f"streamspace/{name}:{VERSION}" for name in ("control-plane", "ui", "agent")}


class Containers:
    """Containers a test starts, removed (with their anonymous volumes) at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def run(self, image: str, *args: str, env: dict[str, str] | None = None) -> str:
        name = f"streamspace-test-{uuid.uuid4().hex[:8]}"
        flags = [f"--env={key}={value}" for key, value in (env or {}).items()]
        self.names.append(name)
        docker("run", "--detach", "--name", name, *FAST_HEALTH, *flags, *args, image)
        return name

    def remove_all(self) -> None:
        if self.names:
            docker("rm", "--force", "--volumes", *self.names, check=False)


@pytest.fixture
def containers() -> Iterator[Containers]:
    made = Containers()
    try:
        yield made
    finally:
        made.remove_all()


def ip_of(name: str) -> str:
    return docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", name)


def health_of(name: str) -> str:
    state = json.loads(docker("inspect", "--format", "{{json .State}}", name))
    if not state["Running"]:
        raise AssertionError(f"{name} exited ({state['ExitCode']}):\n{logs_of(name)[-2000:]}")
    return str(state["Health"]["Status"])


def logs_of(name: str) -> str:
    done = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def wait_healthy(name: str) -> None:
    wait_for(lambda: health_of(name) == "healthy", what=f"{name}'s HEALTHCHECK to pass")


def uid_of(name: str) -> str:
    return docker("exec", name, "id", "-u")


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5)


def start_control_plane(containers: Containers, image: str, pod: str) -> str:
    name = containers.run(
        image, env={"POD_NAME": pod, "STREAMSPACE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    base = f"http://{ip_of(name)}:8080"
    wait_for(lambda: get(f"{base}/ready").status_code == 200, what="the control plane's /ready")
    return name


def test_control_plane_image_serves_health_as_uid_10001(
    images: dict[str, str], containers: Containers
) -> None:
    name = start_control_plane(containers, images["control-plane"], pod="cp-image-test")
    base = f"http://{ip_of(name)}:8080"
    health = get(f"{base}/health").json()
    assert (health["status"], health["pod_name"], health["version"]) == (
        "ok",
        "cp-image-test",
        VERSION,
    )
    ready = get(f"{base}/ready").json()
    assert ready["checks"] == {"database": "ok", "hub": "ok"}
    assert uid_of(name) == "10001"
    # The embedded default: SQLite in the data directory, written by the unprivileged user.
    assert (
        docker("exec", name, "stat", "-c", "%u", "/var/lib/streamspace/streamspace.db") == "10001"
    )
    wait_healthy(name)


def test_ui_image_serves_the_app_and_proxies_to_the_control_plane(
    images: dict[str, str], containers: Containers
) -> None:
    cp = start_control_plane(containers, images["control-plane"], pod="cp-behind-ui")
    ui = containers.run(images["ui"], env={"STREAMSPACE_API_UPSTREAM": f"{ip_of(cp)}:8080"})
    base = f"http://{ip_of(ui)}:8080"
    page = wait_for(lambda: get(f"{base}/"), what="the UI's index.html")
    assert page.text == (REPO / "ui" / "dist" / "index.html").read_text()
    assert get(f"{base}/sessions").text == page.text  # a client-side route
    assert get(f"{base}/health").json()["pod_name"] == "cp-behind-ui"
    login = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"username": "admin", "password": ADMIN_PASSWORD},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    assert uid_of(ui) == "101"
    wait_healthy(ui)


def test_ui_image_refuses_a_malformed_upstream(
    images: dict[str, str], containers: Containers
) -> None:
    ui = containers.run(images["ui"], env={"STREAMSPACE_API_UPSTREAM": "api:8080; evil"})
    wait_for(
        lambda: docker("inspect", "--format", "{{.State.Status}}", ui) == "exited",
        what="the UI container to stop",
    )
    assert "is not host:port" in logs_of(ui)


def test_agent_image_registers_with_a_precreated_key(
    images: dict[str, str], containers: Containers
) -> None:
    agent_id = f"image-agent-{uuid.uuid4().hex[:8]}"
    network = f"streamspace-test-{agent_id}"
    cp = start_control_plane(containers, images["control-plane"], pod="cp-for-agent")
    created = docker("exec", cp, "streamspace", "agents", "create", agent_id)
    key = created.splitlines()[-1]
    socket_gid = str(os.stat("/var/run/docker.sock").st_gid)
    try:
        agent = containers.run(
            images["agent"],
            "--volume=/var/run/docker.sock:/var/run/docker.sock",
            f"--group-add={socket_gid}",
            env={
                "AGENT_ID": agent_id,
                "AGENT_API_KEY": key,
                "CONTROL_PLANE_URL": f"http://{ip_of(cp)}:8080",
                "DOCKER_NETWORK": network,
            },
        )
        base = f"http://{ip_of(cp)}:8080"
        token = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            timeout=10,
        ).json()["access_token"]

        def connected() -> bool:
            listed = httpx.get(
                f"{base}/api/v1/agents", headers={"Authorization": f"Bearer {token}"}, timeout=5
            ).json()
            return any(a["id"] == agent_id and a["connected"] for a in listed)

        wait_for(connected, what=f"{agent_id} to show as connected")
        assert uid_of(agent) == "10001"
        wait_healthy(agent)
    finally:
        cleanup(agent_id, network)


def test_agent_image_says_when_the_control_plane_is_unreachable(
    images: dict[str, str], containers: Containers
) -> None:
    agent = containers.run(
        images["agent"],
        env={
            "AGENT_ID": "image-agent-lost",
            "AGENT_BOOTSTRAP_KEY": "bootstrap-key",
            "CONTROL_PLANE_URL": "http://127.0.0.1:9",
            "APPROVAL_POLL_INTERVAL": "1",
        },
    )
    wait_for(
        lambda: "control plane unreachable" in logs_of(agent),
        what="the agent to report the unreachable control plane",
    )
    assert "Traceback" not in logs_of(agent)
    wait_healthy(agent)  # alive and retrying, which is what the health check reports
