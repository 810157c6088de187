"""Two installations on one Docker engine: two `streamspace up` processes (each its own data
directory, SQLite database, port and embedded Docker agent) with sessions of the same user and
template, running and hibernated. Restarted, each finds every one of its sessions in its state
and its own home; neither stopped, removed or shared anything of the other's. A session
network removed from outside is made again by the next start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import eventually
from tests.support.docker import docker_cli, remove_labelled
from tests.support.processes import VENV_BIN, Proc, free_port, wait_until

pytestmark = pytest.mark.docker
PASSWORD = "admin-pass-123"


class Up(Proc):
    """`streamspace up` with its local Docker agent, on `data_dir` and `port`."""

    def __init__(self, *, data_dir: Path, port: int, log_dir: Path) -> None:
        self.port = port
        super().__init__(
            name=f"up-{port}",
            log_dir=log_dir,
            args=[str(VENV_BIN / "streamspace"), "up"],
            env={
                "STREAMSPACE_DATA_DIR": str(data_dir),
                "STREAMSPACE_PORT": str(port),
                "STREAMSPACE_HOST": "127.0.0.1",
                "STREAMSPACE_ADMIN_PASSWORD": PASSWORD,
                "HEARTBEAT_INTERVAL": "2",
            },
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Up:
        super().start()
        wait_until(self.healthy, timeout=90, what="streamspace up")
        return self

    def healthy(self) -> bool:
        if not self.alive:
            raise RuntimeError(f"streamspace up exited:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class Installation:
    proc: Up
    installation_id: str = ""
    token: str = ""
    running: str = ""  # session ids
    hibernated: str = ""

    @property
    def agent_id(self) -> str:
        return f"local-docker-{self.installation_id[:8]}"

    @property
    def network(self) -> str:
        return f"streamspace-sessions-{self.installation_id[:8]}"

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with httpx.AsyncClient(base_url=self.proc.url, timeout=15) as client:
            return await client.request(method, path, headers=headers, **kwargs)

    async def log_in(self) -> None:
        self.token = ""
        r = await self.call(
            "POST", "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        )
        r.raise_for_status()
        self.token = r.json()["access_token"]
        self.installation_id = (await self.call("GET", "/health")).json()["installation_id"]

    async def agent_online(self) -> None:
        async def online() -> bool:
            agents = (await self.call("GET", "/api/v1/agents")).json()
            return any(a["id"] == self.agent_id and a["status"] == "online" for a in agents)

        await eventually(online, timeout=60, what=f"{self.agent_id} online")

    async def state(self, sid: str) -> str:
        return str((await self.call("GET", f"/api/v1/sessions/{sid}")).json()["state"])

    async def wait_state(self, sid: str, state: str) -> None:
        async def reached() -> bool:
            return await self.state(sid) == state

        await eventually(reached, timeout=90, what=f"session {sid} {state}")

    async def start_session(self) -> str:
        r = await self.call("POST", "/api/v1/sessions", json={"template": "terminal"})
        assert r.status_code == 202, r.text
        sid = str(r.json()["id"])
        await self.wait_state(sid, "running")
        return sid

    async def act(self, sid: str, action: str, state: str) -> None:
        assert (await self.call("POST", f"/api/v1/sessions/{sid}/{action}")).status_code == 202
        await self.wait_state(sid, state)


async def home_file(sid: str) -> str:
    return await docker_cli("exec", "-u", "user", f"ss-{sid}", "cat", "/home/user/owner.txt")


async def inspect_state(sid: str) -> str:
    """The container's state under either of its names."""
    for name in (f"ss-{sid}", f"ss-{sid}.hibernated"):
        proc = await asyncio.create_subprocess_exec(
            "docker",
            "inspect",
            "-f",
            "{{.State.Status}}",
            name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        if proc.returncode == 0:
            return out.decode().strip()
    return "gone"


def remove_installation(installation_id: str) -> None:
    remove_labelled(
        f"streamspace.installation={installation_id}",
        network=f"streamspace-sessions-{installation_id[:8]}",
    )


@pytest.fixture
async def two(tmp_path: Path, session_image: str) -> AsyncIterator[list[Installation]]:
    installs = [
        Installation(Up(data_dir=tmp_path / name / "data", port=free_port(), log_dir=tmp_path))
        for name in ("first", "second")
    ]
    try:
        yield installs
    finally:
        for inst in installs:
            inst.proc.stop()
        for inst in installs:
            if inst.installation_id:
                await asyncio.to_thread(remove_installation, inst.installation_id)


async def restart(inst: Installation) -> None:
    inst.proc.stop()
    await asyncio.to_thread(inst.proc.start)
    before = inst.installation_id
    await inst.log_in()
    assert inst.installation_id == before  # generated once per database, kept
    await inst.agent_online()


async def test_two_installations_on_one_engine_keep_their_own(two: list[Installation]) -> None:
    for inst in two:
        await asyncio.to_thread(inst.proc.start)
        await inst.log_in()
        await inst.agent_online()
    first, second = two
    assert first.installation_id != second.installation_id
    for inst, mark in ((first, "first"), (second, "second")):
        # the same user and template in both: the homes must still be apart
        inst.hibernated = await inst.start_session()
        await docker_cli(
            "exec",
            "-u",
            "user",
            f"ss-{inst.hibernated}",
            "sh",
            "-c",
            f"echo {mark} > /home/user/owner.txt",
        )
        await inst.act(inst.hibernated, "hibernate", "hibernated")
        inst.running = await inst.start_session()

    for inst in two:
        await restart(inst)

    for inst, mark in ((first, "first"), (second, "second")):
        assert await inst.state(inst.running) == "running"
        assert await inspect_state(inst.running) == "running"
        assert (await home_file(inst.running)).strip() == mark
        assert await inst.state(inst.hibernated) == "hibernated"
        assert await inspect_state(inst.hibernated) == "exited"
    for inst, mark in ((first, "first"), (second, "second")):
        await inst.act(inst.hibernated, "resume", "running")
        assert (await home_file(inst.hibernated)).strip() == mark
    for inst in two:  # nothing of either was stopped while the other woke its own
        for sid in (inst.running, inst.hibernated):
            assert await inst.state(sid) == "running"
            assert await inspect_state(sid) == "running"
        volumes = await docker_cli(
            "volume",
            "ls",
            "-q",
            "--filter",
            f"label=streamspace.installation={inst.installation_id}",
        )
        assert len(volumes.split()) == 1


async def test_a_session_network_removed_from_outside_is_made_again(
    two: list[Installation],
) -> None:
    first, second = two
    for inst in two:
        await asyncio.to_thread(inst.proc.start)
        await inst.log_in()
        await inst.agent_online()
    second.running = await second.start_session()
    first.hibernated = await first.start_session()
    await first.act(first.hibernated, "hibernate", "hibernated")

    await docker_cli("network", "rm", first.network)  # only a stopped session was on it

    first.running = await first.start_session()
    await first.act(first.hibernated, "resume", "running")
    assert await second.state(second.running) == "running"
    assert await inspect_state(second.running) == "running"
