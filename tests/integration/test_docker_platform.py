"""DockerPlatform against the real Docker engine and a real session image (images/build.sh):
what only Docker does. What every platform must do is in tests/contracts/test_platforms.py.

Each test gets its own agent id and network, and removes every container, volume and network
it made. Without a Docker engine or a buildable image the tests skip, unless
STREAMSPACE_TEST_REQUIRE_SERVICES=1 (then they fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamspace.agents.platforms.base import SessionSpec
from streamspace.agents.platforms.docker import DockerPlatform
from streamspace.agents.platforms.rfb import RFB_BANNER
from streamspace.errors import PlatformError
from tests.support.cluster import eventually
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


async def test_the_watch_reports_a_hibernation_as_such(platform: DockerPlatform) -> None:
    """Hibernating stops the container; its `die` event must not read as a crash."""
    spec = make_spec()
    await platform.start(spec)
    events = platform.watch()
    # The watch replays the engine's events from the instant it begins iterating: one turn of
    # the loop lets it begin.
    first_event = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    try:
        await platform.hibernate(spec.session_id)
        seen = await asyncio.wait_for(first_event, 15)
    finally:
        first_event.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first_event
        await events.aclose()  # type: ignore[attr-defined]

    assert (seen.session_id, seen.state) == (spec.session_id, "hibernated")


async def test_a_killed_session_starts_again(platform: DockerPlatform) -> None:
    """Its exited container is started again, not left in the way of a new one."""
    spec = make_spec()
    started = await platform.start(spec)
    await docker_cli("kill", f"ss-{spec.session_id}")

    async def failed() -> bool:
        return (await states(platform)).get(spec.session_id) == "failed"

    await eventually(failed, what="the killed session listed as failed")
    restarted = await platform.start(spec)

    assert restarted.state == "running"
    assert restarted.metadata["container_id"] == started.metadata["container_id"]
    assert RFB_BANNER.fullmatch(await read_banner(platform, spec.session_id))
