"""End to end on the real Docker engine: a control plane process, a `streamspace agent`
process on the Docker platform, sessions driven only through the REST API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, cluster, eventually
from tests.support.docker import IMAGE, cleanup, docker_cli

pytestmark = [pytest.mark.docker, pytest.mark.postgres]


@pytest.fixture
async def docker_cluster(
    tmp_path: Path, session_image: str
) -> AsyncIterator[tuple[Cluster, str, str]]:
    agent_id = f"docker-e2e-{uuid.uuid4().hex[:8]}"
    network = f"streamspace-test-{agent_id}"
    async with cluster(tmp_path, replicas=1, redis=False, lb=False) as c:
        try:
            yield c, agent_id, network
        finally:
            for proc in c.others:
                proc.stop()
            await asyncio.to_thread(cleanup, agent_id, network)


def docker_agent_env(network: str, **extra: str) -> dict[str, str]:
    return {"PLATFORM": "docker", "DOCKER_NETWORK": network, "HEARTBEAT_INTERVAL": "2", **extra}


async def container_ip(name: str, network: str) -> str:
    info = json.loads(await docker_cli("inspect", name))[0]
    return str(info["NetworkSettings"]["Networks"][network]["IPAddress"])


async def test_session_lifecycle_on_docker(docker_cluster: tuple[Cluster, str, str]) -> None:
    c, agent_id, network = docker_cluster
    base = c.replicas[0].url
    admin = await c.token(base)
    user = f"u{uuid.uuid4().hex[:6]}"
    await c.call(
        base, "POST", "/api/v1/users", admin, json={"username": user, "password": "pass-word-1"}
    )
    me = await c.token(base, user, "pass-word-1")
    c.agent(agent_id, extra=docker_agent_env(network))
    await c.approve(agent_id, admin)
    await c.wait_online(agent_id, admin)

    async def start() -> str:
        r = await c.call(base, "POST", "/api/v1/sessions", me, json={"template": "terminal"})
        assert r.status_code == 202, r.text
        sid = str(r.json()["id"])
        await c.wait_state(sid, "running", me, timeout=60)
        return sid

    sid = await start()
    name = f"ss-{sid}"
    reader, writer = await asyncio.open_connection(await container_ip(name, network), 5900)
    banner = await asyncio.wait_for(reader.readexactly(12), 5)
    writer.close()
    assert banner.startswith(b"RFB 003.00")
    inspect = json.loads(await docker_cli("inspect", name))[0]
    assert inspect["HostConfig"]["PortBindings"] in ({}, None)  # nothing published on the host
    # the agent learnt its installation from the welcome, before it created anything
    installation = (await c.call(base, "GET", "/health", {})).json()["installation_id"]
    assert inspect["Config"]["Labels"]["streamspace.installation"] == installation
    await docker_cli("exec", "-u", "user", name, "sh", "-c", "echo kept > /home/user/notes.txt")

    assert (await c.call(base, "POST", f"/api/v1/sessions/{sid}/hibernate", me)).status_code == 202
    await c.wait_state(sid, "hibernated", me, timeout=30)
    assert "Exited" in await docker_cli(
        "ps", "-a", "--filter", f"label=streamspace.session={sid}", "--format", "{{.Status}}"
    )
    assert (await c.call(base, "POST", f"/api/v1/sessions/{sid}/resume", me)).status_code == 202
    await c.wait_state(sid, "running", me, timeout=60)
    assert (await c.call(base, "DELETE", f"/api/v1/sessions/{sid}", me)).status_code == 202
    await c.wait_state(sid, "terminated", me, timeout=30)
    assert await docker_cli("ps", "-aq", "--filter", f"label=streamspace.session={sid}") == ""

    second = await start()  # same user and template: the home volume comes back
    out = await docker_cli("exec", "-u", "user", f"ss-{second}", "cat", "/home/user/notes.txt")
    assert out.strip() == "kept"
    await docker_cli("kill", f"ss-{second}")
    await c.wait_state(second, "failed", me, timeout=30)
    reason = (await c.call(base, "GET", f"/api/v1/sessions/{second}", me)).json()["state_reason"]
    assert "137" in reason or "SIGKILL" in reason


async def test_leader_failover_adopts_running_sessions(
    docker_cluster: tuple[Cluster, str, str], tmp_path: Path
) -> None:
    c, agent_id, network = docker_cluster
    base = c.replicas[0].url
    admin = await c.token(base)
    ha = docker_agent_env(
        network,
        ENABLE_HA="true",
        LEADER_ELECTION_BACKEND="file",
        LOCK_FILE_PATH=str(tmp_path / "agent.lock"),
        LEASE_DURATION="4",
        RENEW_DEADLINE="3",
        RETRY_PERIOD="0.5",
    )
    first = c.agent(agent_id, extra={**ha, "POD_NAME": "replica-1"})
    await c.approve(agent_id, admin)
    await c.wait_online(agent_id, admin)
    second = c.agent(agent_id, extra={**ha, "POD_NAME": "replica-2"})
    sids = []
    for _ in range(2):
        r = await c.call(base, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
        sids.append(r.json()["id"])
    for sid in sids:
        await c.wait_state(sid, "running", admin, timeout=60)
    started = {
        sid: json.loads(await docker_cli("inspect", f"ss-{sid}"))[0]["State"]["StartedAt"]
        for sid in sids
    }
    leader, standby = (first, second) if "became leader" in first.log() else (second, first)
    old_epoch = (await c.wait_online(agent_id, admin))["epoch"]
    leader.kill()
    info = await eventually(
        lambda: _new_epoch(c, base, admin, agent_id, old_epoch), timeout=30, what="standby leads"
    )
    assert info["status"] == "online"
    await standby.logged("became leader")
    for sid in sids:  # same containers, never restarted, still running
        assert (await c.session_state(base, sid, admin)) == "running"
        now = json.loads(await docker_cli("inspect", f"ss-{sid}"))[0]["State"]
        assert now["Running"] and now["StartedAt"] == started[sid]


async def _new_epoch(c: Cluster, base: str, admin: dict[str, str], agent_id: str, old: int):  # type: ignore[no-untyped-def]
    for a in (await c.call(base, "GET", "/api/v1/agents", admin)).json():
        if a["id"] == agent_id and a["epoch"] > old and a["status"] == "online":
            return a
    return None


async def test_template_egress_and_limits_reach_the_container(
    docker_cluster: tuple[Cluster, str, str],
) -> None:
    """A template without internet runs on the sealed no-egress network; a template asking for
    no memory limit fails with the agent's reason (SESSION_ALLOW_UNLIMITED is off by default)."""
    c, agent_id, network = docker_cluster
    base = c.replicas[0].url
    admin = await c.token(base)
    c.agent(agent_id, extra=docker_agent_env(network, SESSION_PIDS_LIMIT="500"))
    await c.approve(agent_id, admin)
    await c.wait_online(agent_id, admin)
    suffix = uuid.uuid4().hex[:6]
    for name, extra in (
        (f"offline-{suffix}", {"egress": False}),
        (f"huge-{suffix}", {"memory_limit_mb": 0}),
    ):
        body = {
            "name": name,
            "display_name": name,
            "image": IMAGE,
            "persistent_home": False,
            **extra,
        }
        r = await c.call(base, "POST", "/api/v1/templates", admin, json=body)
        assert r.status_code == 201, r.text

    r = await c.call(
        base, "POST", "/api/v1/sessions", admin, json={"template": f"offline-{suffix}"}
    )
    offline = str(r.json()["id"])
    await c.wait_state(offline, "running", admin, timeout=60)
    inspect = json.loads(await docker_cli("inspect", f"ss-{offline}"))[0]
    assert list(inspect["NetworkSettings"]["Networks"]) == [f"{network}-noegress"]
    assert inspect["HostConfig"]["PidsLimit"] == 500
    assert inspect["HostConfig"]["Memory"] == 2048 * 1024 * 1024  # the agent's default

    r = await c.call(base, "POST", "/api/v1/sessions", admin, json={"template": f"huge-{suffix}"})
    huge = str(r.json()["id"])
    await c.wait_state(huge, "failed", admin, timeout=60)
    reason = (await c.call(base, "GET", f"/api/v1/sessions/{huge}", admin)).json()["state_reason"]
    assert "unlimited memory" in reason and "SESSION_ALLOW_UNLIMITED" in reason
