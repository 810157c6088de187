"""`streamspace up`: the whole product in one process. Serves the control plane and, when a
Docker engine answers, runs a local Docker agent beside it (auto-approved, embedded mode only),
building the default session image on first use with its progress shown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from streamspace.config import AgentSettings, ControlPlaneSettings
from streamspace.control_plane.app import create_app, installation_id
from streamspace.control_plane.db.engine import create_engine, session_factory
from streamspace.control_plane.db.records import AgentRecord
from streamspace.control_plane.server import server_config
from streamspace.control_plane.services.agents import AgentService
from streamspace.errors import Conflict

log = logging.getLogger("streamspace.up")
LOCAL_AGENT = "local-docker"  # the id before installation ids; upgraded installations keep it
LOCAL_NETWORK = "streamspace-sessions"
SHORT_ID = 8
DEFAULT_IMAGE = "streamspace/terminal:bookworm"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "images" / "build.sh"


async def docker_available() -> bool:
    import aiodocker

    try:
        async with aiodocker.Docker() as docker:
            await docker.version()
        return True
    except Exception:
        return False


async def image_exists(image: str) -> bool:
    import aiodocker

    async with aiodocker.Docker() as docker:
        try:
            await docker.images.inspect(image)
            return True
        except aiodocker.DockerError:
            return False


async def build_default_image() -> bool:
    """Build the default session image, echoing the build's progress lines."""
    if await image_exists(DEFAULT_IMAGE):
        return True
    if not BUILD_SCRIPT.exists():
        log.warning("session image %s is missing and %s is not here", DEFAULT_IMAGE, BUILD_SCRIPT)
        return False
    log.info("building the default session image %s (first run only; 1-2 minutes)", DEFAULT_IMAGE)
    proc = await asyncio.create_subprocess_exec(
        str(BUILD_SCRIPT),
        "default",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    async for line in proc.stdout:
        log.info("[images] %s", line.decode(errors="replace").rstrip())
    ok = await proc.wait() == 0
    log.log(
        logging.INFO if ok else logging.ERROR,
        "session image build %s",
        "finished" if ok else f"failed (exit {proc.returncode}); see the lines above",
    )
    return ok


@dataclass(frozen=True, kw_only=True)
class LocalAgent:
    """Who the embedded agent is in this installation, and its fresh key."""

    agent_id: str
    network: str
    installation_id: str
    key: str


def local_names(*, installation: str, legacy: bool) -> tuple[str, str]:
    """The embedded agent's id and sessions' network. Unique per installation, so two
    installations on one engine never list (and stop) each other's sessions; an installation
    from before installation ids keeps `local-docker` and its network, which its sessions,
    running and hibernated, are labelled with and attached to."""
    if legacy:
        return LOCAL_AGENT, LOCAL_NETWORK
    short = installation[:SHORT_ID]
    return f"{LOCAL_AGENT}-{short}", f"{LOCAL_NETWORK}-{short}"


async def provision_local_agent(settings: ControlPlaneSettings) -> LocalAgent:
    """Create (or re-key) the approved local agent of this installation."""
    engine = create_engine(settings)
    try:
        db = session_factory(engine)
        installation = await installation_id(db)
        async with db() as s:
            legacy = await s.get(AgentRecord, LOCAL_AGENT) is not None
        agent_id, network = local_names(installation=installation, legacy=legacy)
        service = AgentService(sessions=db, bootstrap_key=None, announce=None)
        try:
            key = await service.create_with_key(
                agent_id=agent_id, platform="docker", region="local", max_sessions=10, admin="up"
            )
        except Conflict:
            key = await service.rotate_key(agent_id=agent_id, actor="up")
        return LocalAgent(agent_id=agent_id, network=network, installation_id=installation, key=key)
    finally:
        await engine.dispose()


async def run_local_agent(settings: ControlPlaneSettings) -> None:
    from streamspace.agents.platforms.docker import DockerPlatform
    from streamspace.agents.runtime import AgentRuntime

    if not await docker_available():
        log.info("no Docker engine answers; running without a local agent")
        return
    await build_default_image()
    local = await provision_local_agent(settings)
    agent_settings = AgentSettings(
        agent_id=local.agent_id,
        control_plane_url=f"http://127.0.0.1:{settings.port}",
        platform="docker",
        region="local",
        max_sessions=10,
        api_key=local.key,
        key_file=settings.data_dir / "local-agent.key",
        docker_network=local.network,
    )
    # from the settings: SESSION_* limits, sealing and egress apply to the embedded agent too
    platform = DockerPlatform.from_settings(agent_settings, installation_id=local.installation_id)
    log.info(
        "local Docker agent %s starting (installation %s, network %s)",
        local.agent_id,
        local.installation_id,
        local.network,
    )
    try:
        await AgentRuntime(settings=agent_settings, platform=platform, key=local.key).run()
    finally:
        await platform.close()


async def serve_embedded(settings: ControlPlaneSettings, *, with_agent: bool = True) -> None:
    server = uvicorn.Server(server_config(create_app(settings), settings))
    serving = asyncio.create_task(server.serve())
    agent: asyncio.Task[None] | None = None
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
        await asyncio.sleep(0.05)
    if with_agent and server.started:
        agent = asyncio.create_task(run_local_agent(settings), name="local-agent")
    try:
        await serving
    finally:
        if agent is not None:
            agent.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await agent
