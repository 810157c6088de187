"""Upgrade in place to installation ids, with real Docker objects made the old way: a session
container and home volume from before carry the agent's id but no installation label, and
the home its legacy name. After the upgrade the agent still lists them in their state, wakes
the hibernated one, and gives the same user's next session the same home; another
installation's labelled session under the same agent id stays out of its sight. The embedded
agent of an installation that has `local-docker` keeps that id and its network; a new
installation's is unique to it.

Objects "made the old way" come from DockerPlatform without an installation id: the agent
talking to a control plane from before installation ids, which creates them exactly as the
code before did (same names, same labels)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamspace.agents.platforms.base import SessionSpec
from streamspace.agents.platforms.docker import DockerPlatform
from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.db import migrate
from streamspace.control_plane.db.engine import create_engine, session_factory
from streamspace.control_plane.services.agents import AgentService
from streamspace.embedded import provision_local_agent
from tests.support.docker import IMAGE, cleanup, docker_cli

pytestmark = pytest.mark.docker

INSTALLATION = uuid.uuid4().hex
OTHER = uuid.uuid4().hex


@pytest.fixture
async def agent(agent_names: tuple[str, str]) -> AsyncIterator[tuple[str, str]]:
    """`agent_names`, and the other installation's network of the same agent removed too."""
    agent_id, network = agent_names
    try:
        yield agent_names
    finally:
        await asyncio.to_thread(cleanup, agent_id, f"{network}-other")


def spec(user: str) -> SessionSpec:
    return SessionSpec(
        session_id=uuid.uuid4().hex[:12], user=user, template="terminal", image=IMAGE
    )


async def write_home(sid: str, text: str) -> None:
    await docker_cli("exec", "-u", "user", f"ss-{sid}", "sh", "-c", f"echo {text} > ~/notes.txt")


async def read_home(sid: str) -> str:
    return (
        await docker_cli("exec", "-u", "user", f"ss-{sid}", "cat", "/home/user/notes.txt")
    ).strip()


async def states(platform: DockerPlatform) -> dict[str, str]:
    return {s.session_id: s.state for s in await platform.list_sessions()}


async def test_an_upgraded_agent_keeps_its_legacy_sessions_and_homes(
    agent: tuple[str, str],
) -> None:
    agent_id, network = agent
    user = f"bob-{uuid.uuid4().hex[:8]}"
    before = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20)
    running, hibernated = spec(user), spec(user)
    try:
        await before.start(running)
        await write_home(running.session_id, "from-before")
        await before.start(hibernated)
        await before.hibernate(hibernated.session_id)
    finally:
        await before.close()
    legacy_labels = await docker_cli(
        "inspect", "-f", "{{json .Config.Labels}}", f"ss-{running.session_id}"
    )
    assert "streamspace.installation" not in legacy_labels  # made the old way
    other = DockerPlatform(
        agent_id=agent_id, network=f"{network}-other", installation_id=OTHER, ready_timeout=20
    )
    after = DockerPlatform(
        agent_id=agent_id, network=network, installation_id=INSTALLATION, ready_timeout=20
    )
    try:
        # Another installation's agent of the same id (on an engine shared by installations
        # made before installation ids, this one would adopt the legacy objects too: an
        # upgrade cannot tell whose they were; the embedded agents' ids differ).
        theirs = spec(f"carol-{uuid.uuid4().hex[:8]}")
        await other.start(theirs)
        await write_home(theirs.session_id, "theirs")

        seen = await states(after)
        assert seen == {running.session_id: "running", hibernated.session_id: "hibernated"}

        await after.wake(hibernated.session_id)
        assert await read_home(hibernated.session_id) == "from-before"
        again = spec(user)
        await after.start(again)
        assert await read_home(again.session_id) == "from-before"
        assert (await states(other))[theirs.session_id] == "running"
        assert await read_home(theirs.session_id) == "theirs"
        labels = await docker_cli(
            "inspect", "-f", "{{json .Config.Labels}}", f"ss-{again.session_id}"
        )
        assert f'"streamspace.installation":"{INSTALLATION}"' in labels
    finally:
        await after.close()
        await other.close()


async def local_agent(data_dir: Path, *, legacy: bool) -> tuple[str, str]:
    settings = ControlPlaneSettings(data_dir=data_dir)
    data_dir.mkdir(mode=0o700, parents=True)
    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
        if legacy:  # what `streamspace up` made before installation ids
            service = AgentService(
                sessions=session_factory(engine), bootstrap_key=None, announce=None
            )
            await service.create_with_key(
                agent_id="local-docker",
                platform="docker",
                region="local",
                max_sessions=10,
                admin="up",
            )
    finally:
        await engine.dispose()
    local = await provision_local_agent(settings)
    again = await provision_local_agent(settings)
    assert (again.agent_id, again.network) == (local.agent_id, local.network)
    assert again.installation_id == local.installation_id
    return local.agent_id, local.network


async def test_the_embedded_agent_keeps_its_id_on_upgrade_and_is_unique_when_new(
    tmp_path: Path,
) -> None:
    assert await local_agent(tmp_path / "old", legacy=True) == (
        "local-docker",
        "streamspace-sessions",
    )
    first = await local_agent(tmp_path / "new", legacy=False)
    second = await local_agent(tmp_path / "newer", legacy=False)
    assert first[0].startswith("local-docker-") and first[1].startswith("streamspace-sessions-")
    assert first != second
