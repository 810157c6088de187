"""Issue 19's backup proof, end to end on the real Docker engine: a backup taken with
`streamspace backup --homes` while a user's session runs, the old installation then lost
(its PostgreSQL database dropped, its containers and volumes removed), restored with
`streamspace restore` into a new one on SQLite in another data directory: the user signs in
there and finds their home's files in a new session."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, cluster
from tests.support.docker import cleanup, docker_cli
from tests.support.processes import VENV_BIN, ApiReplica

pytestmark = [pytest.mark.docker, pytest.mark.postgres]

NOTE = "kept across installations"


async def streamspace(*args: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "streamspace"),
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, f"streamspace {' '.join(args)}:\n{out.decode()}"
    return out.decode()


async def start_session(c: Cluster, user: dict[str, str]) -> str:
    base = c.replicas[0].url
    r = await c.call(base, "POST", "/api/v1/sessions", user, json={"template": "terminal"})
    assert r.status_code == 202, r.text
    sid = str(r.json()["id"])
    await c.wait_state(sid, "running", user, timeout=90)
    return sid


async def test_a_user_finds_their_home_in_the_restored_installation(
    tmp_path: Path, session_image: str
) -> None:
    agent_id = f"backup-e2e-{uuid.uuid4().hex[:8]}"
    network = f"streamspace-test-{agent_id}"
    agent_env = {"PLATFORM": "docker", "DOCKER_NETWORK": network, "HEARTBEAT_INTERVAL": "2"}
    archive = tmp_path / "site.tar.gz"
    try:
        async with cluster(tmp_path, replicas=1, redis=False, lb=False) as old:
            base = old.replicas[0].url
            admin = await old.token(base)
            user = {"username": "alice", "password": "alice-pass-1"}
            assert (await old.call(base, "POST", "/api/v1/users", admin, json=user)).is_success
            alice = await old.token(base, "alice", "alice-pass-1")
            old.agent(agent_id, extra=agent_env)
            await old.approve(agent_id, admin)
            await old.wait_online(agent_id, admin)
            sid = await start_session(old, alice)
            await docker_cli(
                "exec",
                "-u",
                "user",
                f"ss-{sid}",
                "sh",
                "-c",
                f"echo '{NOTE}' > /home/user/notes.txt",
            )
            old_env = {"DATABASE_URL": old.env["DATABASE_URL"]}
            out = await streamspace(
                "backup", str(archive), "--homes", "--homes-agent", agent_id, env=old_env
            )
            assert "1 home volumes" in out, out
            assert await old.session_state(base, sid, alice) == "running"  # taken online
            new_env = {k: v for k, v in old.env.items() if k != "DATABASE_URL"}
        # The old installation is gone: its database dropped, its containers and homes removed.
        cleanup(agent_id, network)
        label = f"label=streamspace.agent={agent_id}"
        assert await docker_cli("volume", "ls", "-q", "--filter", label) == ""

        data_dir = tmp_path / "new-data"
        new_env |= {
            "DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'streamspace.db'}",
            "STREAMSPACE_DATA_DIR": str(data_dir),
        }
        out = await streamspace("restore", str(archive), env=new_env)
        assert "1 home volumes" in out, out
        replica = ApiReplica(pod="api-restored", env=new_env, log_dir=tmp_path).start()
        new = Cluster(log_dir=tmp_path, env=new_env, redis=None, replicas=[replica])
        try:
            base = replica.url
            # the agent comes back with the key it kept: the restored database knows it
            new.agent(agent_id, extra=agent_env, bootstrap=False)
            await new.wait_online(agent_id, await new.token(base))
            alice = await new.token(base, "alice", "alice-pass-1")
            mine = (await new.call(base, "GET", "/api/v1/sessions", alice)).json()
            assert sid in [s["id"] for s in mine]
            again = await start_session(new, alice)
            found = await docker_cli(
                "exec", "-u", "user", f"ss-{again}", "cat", "/home/user/notes.txt"
            )
            assert found.strip() == NOTE
            # the session that ran at backup time went with the old host: ending it is harmless
            r = await new.call(base, "DELETE", f"/api/v1/sessions/{sid}", alice)
            assert r.status_code == 202, r.text
            await new.wait_state(sid, "terminated", alice, timeout=30)
        finally:
            for proc in [*new.others, replica]:
                proc.kill()
    finally:
        cleanup(agent_id, network)
