"""Home volumes through a backup on the real Docker engine: found by their labels, exported
while mounted, restored under the same name and labels with owners, modes and links intact;
never written over, and no helper container left behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamspace.agents.platforms.docker_homes import DockerHomes, HomeVolume
from streamspace.agents.platforms.docker_model import volume_name
from streamspace.errors import Conflict, PlatformError
from tests.support.docker import cleanup, docker_cli

pytestmark = pytest.mark.docker

WRITE = (
    "mkdir -p /home/user/docs && echo draft > /home/user/docs/plan.txt "
    "&& chmod 600 /home/user/docs/plan.txt && ln -s docs/plan.txt /home/user/latest"
)
LIST = "stat -c '%n %u:%g %a' /home/user/docs/plan.txt; readlink /home/user/latest; cat /home/user/latest"


@pytest.fixture
async def agent_id(session_image: str) -> AsyncIterator[str]:
    agent = f"homes-{uuid.uuid4().hex[:8]}"
    try:
        yield agent
    finally:
        cleanup(agent, f"unused-{agent}")


async def in_home(image: str, volume: str, script: str, *, user: str = "user") -> str:
    return await docker_cli(
        "run", "--rm", "-u", user, "--entrypoint", "sh", "--network", "none",
        "--mount", f"type=volume,source={volume},target=/home/user", image, "-c", script,
    )  # fmt: skip


async def test_a_home_comes_back_with_its_owners_modes_and_links(
    agent_id: str, session_image: str, tmp_path: Path
) -> None:
    name = volume_name(user="alice", template=f"t-{agent_id}")
    labels = {
        "streamspace.user": "alice",
        "streamspace.template": f"t-{agent_id}",
        "streamspace.agent": agent_id,
    }
    await docker_cli("volume", "create", *(f"--label={k}={v}" for k, v in labels.items()), name)
    await in_home(session_image, name, WRITE)
    before = await in_home(session_image, name, LIST)
    assert "1000:1000 600" in before and "draft" in before

    homes = DockerHomes(helper_image=session_image)
    try:
        assert await homes.list_homes(agent_id=agent_id) == [HomeVolume(name, labels)]
        archive = tmp_path / "home.tar"
        assert await homes.export(HomeVolume(name, labels), into=archive, advance=lambda _: None)
        with pytest.raises(Conflict, match="exists already"):
            await homes.restore(HomeVolume(name, labels), source=archive, advance=lambda _: None)
        await docker_cli("volume", "rm", name)
        await homes.restore(HomeVolume(name, labels), source=archive, advance=lambda _: None)
        assert await homes.list_homes(agent_id=agent_id) == [HomeVolume(name, labels)]
    finally:
        await homes.close()
    assert await in_home(session_image, name, LIST) == before
    assert await docker_cli("ps", "-aq", "--filter", f"volume={name}") == ""  # no helper left


async def test_a_missing_helper_image_is_named_before_any_work(agent_id: str) -> None:
    homes = DockerHomes(helper_image=f"streamspace/not-built:{agent_id}")
    try:
        with pytest.raises(PlatformError, match="not on this Docker host") as caught:
            await homes.check_helper_image()
        assert caught.value.code == "image_not_found"
    finally:
        await homes.close()


async def test_a_backup_lists_its_installations_homes_and_the_legacy_ones_only(
    agent_id: str, session_image: str
) -> None:
    """Two installations on one engine: a backup of one takes its own homes and the unlabelled
    ones from before installation ids, never the other installation's."""
    made = {}
    for owner in ("ours", "theirs", None):
        name = f"streamspace-home-{owner or 'legacy'}-{agent_id}"
        labels = {
            "streamspace.user": "alice",
            "streamspace.template": "t",
            "streamspace.agent": agent_id,
        }
        if owner is not None:
            labels["streamspace.installation"] = owner
        await docker_cli("volume", "create", *(f"--label={k}={v}" for k, v in labels.items()), name)
        made[owner] = HomeVolume(name, labels)
    homes = DockerHomes(helper_image=session_image)
    try:
        listed = await homes.list_homes(agent_id=agent_id, installation_id="ours")
        assert listed == sorted([made["ours"], made[None]], key=lambda v: v.name)
        everything = await homes.list_homes(agent_id=agent_id)  # no installation: all of them
        assert len(everything) == 3
    finally:
        await homes.close()
