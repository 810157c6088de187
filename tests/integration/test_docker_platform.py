"""DockerPlatform against the real Docker engine and a real session image (images/build.sh).

Each test gets its own agent id and network, and removes every container, volume and network
it made. Without a Docker engine or a buildable image the tests skip, unless
STREAMSPACE_TEST_REQUIRE_SERVICES=1 (then they fail).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamspace.agents.platforms.base import ObservedSession, SessionSpec
from streamspace.agents.platforms.docker import DockerPlatform
from streamspace.agents.platforms.rfb import RFB_BANNER
from streamspace.errors import NotFound, PlatformError
from tests.support.docker import IMAGE, cleanup, docker_cli

pytestmark = pytest.mark.docker

USER = f"alice-{uuid.uuid4().hex[:8]}"  # homes are per user: keep this run's apart


@pytest.fixture
async def platform(session_image: str) -> AsyncIterator[DockerPlatform]:
    agent_id = f"test-{uuid.uuid4().hex[:10]}"
    network = f"streamspace-test-{agent_id}"
    docker = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20)
    try:
        yield docker
    finally:
        await docker.close()
        await asyncio.to_thread(cleanup, agent_id, network)


def make_spec(**overrides: Any) -> SessionSpec:
    fields: dict[str, Any] = {
        "session_id": uuid.uuid4().hex[:12],
        "user": USER,
        "template": "terminal",
        "image": IMAGE,
    }
    fields.update(overrides)
    return SessionSpec(**fields)


async def inspect(container: str) -> Any:
    return json.loads(await docker_cli("inspect", container))[0]


async def read_banner(platform: DockerPlatform, session_id: str) -> bytes:
    reader, writer = await asyncio.open_connection(*await platform.vnc_address(session_id))
    try:
        return await asyncio.wait_for(reader.readexactly(12), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def states(platform: DockerPlatform) -> dict[str, str]:
    return {s.session_id: s.state for s in await platform.list_sessions()}


async def test_start_serves_vnc_on_the_private_network_only(platform: DockerPlatform) -> None:
    spec = make_spec(cpu_limit=0.5, memory_limit_mb=256, env={"GREETING": "hi"})

    observed = await platform.start(spec)

    assert observed.state == "running"
    assert RFB_BANNER.fullmatch(await read_banner(platform, spec.session_id))
    info = await inspect(f"ss-{spec.session_id}")
    host = info["HostConfig"]
    assert host["PortBindings"] in (None, {})
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["Init"] is True
    assert info["Config"]["Labels"]["streamspace.user"] == USER
    assert "GREETING=hi" in info["Config"]["Env"]
    networks = info["NetworkSettings"]["Networks"]
    assert [name.startswith("streamspace-test-") for name in networks] == [True]
    assert observed.vnc_host == next(iter(networks.values()))["IPAddress"]


async def test_start_is_idempotent_even_when_concurrent(platform: DockerPlatform) -> None:
    spec = make_spec()

    first, second = await asyncio.gather(platform.start(spec), platform.start(spec))
    third = await platform.start(spec)

    ids = {o.metadata["container_id"] for o in (first, second, third)}
    assert len(ids) == 1
    assert await states(platform) == {spec.session_id: "running"}


async def test_hibernate_then_wake(platform: DockerPlatform) -> None:
    spec = make_spec()
    await platform.start(spec)

    await platform.hibernate(spec.session_id)
    await platform.hibernate(spec.session_id)

    assert await states(platform) == {spec.session_id: "hibernated"}
    with pytest.raises(PlatformError, match="hibernated"):
        await platform.vnc_address(spec.session_id)

    woken = await platform.wake(spec.session_id)
    again = await platform.wake(spec.session_id)

    assert woken.state == again.state == "running"
    assert RFB_BANNER.fullmatch(await read_banner(platform, spec.session_id))
    assert await states(platform) == {spec.session_id: "running"}


async def test_start_on_a_hibernated_session_wakes_it(platform: DockerPlatform) -> None:
    spec = make_spec()
    started = await platform.start(spec)
    await platform.hibernate(spec.session_id)

    restarted = await platform.start(spec)

    assert restarted.metadata["container_id"] == started.metadata["container_id"]
    assert await states(platform) == {spec.session_id: "running"}


async def test_home_survives_sessions_of_the_same_user_and_template(
    platform: DockerPlatform,
) -> None:
    first = make_spec()
    await platform.start(first)
    await docker_cli(
        "exec", "-u", "user", f"ss-{first.session_id}", "sh", "-c", "echo kept > ~/note.txt"
    )

    await platform.stop(first.session_id)
    await platform.stop(first.session_id)

    assert await states(platform) == {}
    volumes = await docker_cli(
        "volume", "ls", "-q", "--filter", f"name=streamspace-home-{USER}-terminal-"
    )
    assert volumes.strip(), "the home volume must outlive the session"
    second = make_spec()
    await platform.start(second)
    note = await docker_cli("exec", "-u", "user", f"ss-{second.session_id}", "cat", "note.txt")
    assert note == "kept\n"
    other = make_spec(template="other")
    await platform.start(other)
    listing = await docker_cli("exec", "-u", "user", f"ss-{other.session_id}", "ls", "/home/user")
    assert "note.txt" not in listing, "another template has its own home"


async def test_watch_reports_a_killed_session_as_failed_and_a_hibernated_one_as_such(
    platform: DockerPlatform,
) -> None:
    killed, hibernated = make_spec(), make_spec()
    await asyncio.gather(platform.start(killed), platform.start(hibernated))
    events = platform.watch()
    first_event = asyncio.ensure_future(anext(events))
    # One turn of the loop starts the watch, which asks the engine for the events since it
    # started: the kill below is reported whether or not its subscription is up by then.
    await asyncio.sleep(0)

    await docker_cli("kill", f"ss-{killed.session_id}")
    seen: list[ObservedSession] = [await asyncio.wait_for(first_event, 15)]
    await platform.hibernate(hibernated.session_id)
    seen.append(await asyncio.wait_for(anext(events), 15))
    await events.aclose()  # type: ignore[attr-defined]

    assert [(s.session_id, s.state) for s in seen] == [
        (killed.session_id, "failed"),
        (hibernated.session_id, "hibernated"),
    ]
    assert "137" in seen[0].detail
    assert await states(platform) == {
        killed.session_id: "failed",
        hibernated.session_id: "hibernated",
    }
    assert (await platform.start(killed)).state == "running"


async def test_missing_image_fails_with_a_clear_message(platform: DockerPlatform) -> None:
    spec = make_spec(image="streamspace/no-such-image:never")

    with pytest.raises(PlatformError) as caught:
        await platform.start(spec)

    assert "streamspace/no-such-image:never" in caught.value.message
    assert "images/build.sh" in caught.value.message
    assert caught.value.code == "image_not_found"


async def test_a_session_that_cannot_start_fails_fast_with_its_logs(
    platform: DockerPlatform,
) -> None:
    spec = make_spec(env={"SESSION_GEOMETRY": "not-a-geometry"})

    with pytest.raises(PlatformError) as caught:
        await asyncio.wait_for(platform.start(spec), 10)

    assert "exited with code 1" in caught.value.message
    assert "not-a-geometry" in caught.value.message, "the container's own log explains why"
    assert (await states(platform))[spec.session_id] == "failed"


async def test_operations_on_unknown_sessions(platform: DockerPlatform) -> None:
    await platform.stop("never-started")

    for operation in (platform.hibernate, platform.wake, platform.vnc_address):
        with pytest.raises(NotFound):
            await operation("never-started")
