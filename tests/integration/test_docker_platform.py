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
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamspace.agents.platforms.base import SessionSpec
from streamspace.agents.platforms.docker import DockerPlatform
from streamspace.agents.platforms.docker_model import session_labels
from streamspace.agents.platforms.rfb import RFB_BANNER
from streamspace.agents.rfb_auth import SECURITY_NONE, SECURITY_VNC_AUTH
from streamspace.errors import PlatformError
from tests.support.cluster import eventually
from tests.support.docker import IMAGE, cleanup, docker_cli
from tests.support.vnc import raw_login

pytestmark = pytest.mark.docker

USER = f"alice-{uuid.uuid4().hex[:8]}"  # homes are per user: keep this run's apart


@pytest.fixture
def ids() -> tuple[str, str]:
    """This test's agent id and sessions' network."""
    agent_id = f"test-{uuid.uuid4().hex[:10]}"
    return agent_id, f"streamspace-test-{agent_id}"


@pytest.fixture
async def platform(session_image: str, ids: tuple[str, str]) -> AsyncIterator[DockerPlatform]:
    agent_id, network = ids
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


# -- the VNC boundary: only the agent holds the session's secret -----------------------------


async def server_init(platform: DockerPlatform, session_id: str) -> tuple[int, int]:
    """Open VNC as the agent does (logging in with the secret) and send a ClientInit: the
    framebuffer size the ServerInit announces."""
    reader = asyncio.StreamReader()
    transport, _, authenticated = await platform.open_vnc(
        session_id, lambda: asyncio.StreamReaderProtocol(reader)
    )
    try:
        assert authenticated
        transport.write(b"\x01")
        width, height = struct.unpack(">HH", await asyncio.wait_for(reader.readexactly(4), 10))
        return width, height
    finally:
        transport.close()


async def test_a_session_vnc_port_refuses_every_client_but_the_agent(
    platform: DockerPlatform,
) -> None:
    spec = make_spec()
    observed = await platform.start(spec)
    assert observed.vnc_host and observed.vnc_port
    env = (await inspect(f"ss-{spec.session_id}"))["Config"]["Env"]
    secret = next(e.partition("=")[2] for e in env if e.startswith("VNC_PASSWORD="))
    assert len(secret) == 8

    # x11vnc offers VNC Authentication only; a client choosing None is hung up on, one with
    # a wrong password gets a failed SecurityResult: neither gets a ServerInit
    host, port = observed.vnc_host, observed.vnc_port
    none = await raw_login(host, port, security=SECURITY_NONE)
    assert none == ([SECURITY_VNC_AUTH], "closed")
    guessed = await raw_login(host, port, security=SECURITY_VNC_AUTH, password="guessed!")
    assert guessed == ([SECURITY_VNC_AUTH], "failed")
    # the same client with the secret gets in (the test can tell): only the secret opens it
    right = await raw_login(host, port, security=SECURITY_VNC_AUTH, password=secret)
    assert right == ([SECURITY_VNC_AUTH], "1280x800")

    # the agent's own login gets the framebuffer; the secret is nowhere it reports
    assert await server_init(platform, spec.session_id) == (1280, 800)
    listed = next(s for s in await platform.list_sessions() if s.session_id == spec.session_id)
    for reported in (observed, listed):
        assert secret not in repr(reported) and secret not in json.dumps(reported.metadata)


async def test_a_session_created_without_a_secret_still_streams(
    platform: DockerPlatform, ids: tuple[str, str]
) -> None:
    """A container an agent made before sessions had secrets (no VNC_PASSWORD: its VNC has
    no password) still streams after the upgrade: the agent passes its bytes through."""
    spec = make_spec(persistent_home=False)
    agent_id, network = ids
    # as the agent made it (managed: the agent seals only its own networks)
    await docker_cli("network", "create", "--label", "streamspace.managed=true", network)
    labels = session_labels(spec=spec, agent_id=agent_id, installation_id=None, home=None)
    await docker_cli(
        "create", "--init", "--name", f"ss-{spec.session_id}", "--network", network,
        *(f"--label={key}={value}" for key, value in labels.items()),
        "-e", "VNC_PORT=5900", spec.image,
    )  # fmt: skip

    await platform.start(spec)  # finds the old container and starts it

    reader = asyncio.StreamReader()
    transport, _, authenticated = await platform.open_vnc(
        spec.session_id, lambda: asyncio.StreamReaderProtocol(reader)
    )
    try:
        assert not authenticated
        assert await asyncio.wait_for(reader.readexactly(12), 10) == b"RFB 003.008\n"
    finally:
        transport.close()
