"""`streamspace up`: the whole product in one process. Serves the control plane and, when a
Docker engine answers, runs a local Docker agent beside it (auto-approved, embedded mode only),
building the default session image on first use with its progress shown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import uvicorn

from streamspace.config import AgentSettings, ControlPlaneSettings
from streamspace.control_plane.app import create_app
from streamspace.control_plane.db.engine import create_engine, session_factory
from streamspace.control_plane.server import server_config
from streamspace.control_plane.services.agents import AgentService
from streamspace.errors import Conflict

log = logging.getLogger("streamspace.up")
LOCAL_AGENT = "local-docker"
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


async def provision_local_agent(settings: ControlPlaneSettings) -> str:
    """Create (or re-key) the approved local agent; returns its fresh key."""
    engine = create_engine(settings)
    try:
        service = AgentService(sessions=session_factory(engine), bootstrap_key=None, announce=None)
        try:
            return await service.create_with_key(
                agent_id=LOCAL_AGENT, platform="docker", region="local", max_sessions=10, admin="up"
            )
        except Conflict:
            return await service.rotate_key(agent_id=LOCAL_AGENT, actor="up")
    finally:
        await engine.dispose()


async def run_local_agent(settings: ControlPlaneSettings) -> None:
    from streamspace.agents.platforms.docker import DockerPlatform
    from streamspace.agents.runtime import AgentRuntime

    if not await docker_available():
        log.info("no Docker engine answers; running without a local agent")
        return
    await build_default_image()
    key = await provision_local_agent(settings)
    agent_settings = AgentSettings(
        agent_id=LOCAL_AGENT,
        control_plane_url=f"http://127.0.0.1:{settings.port}",
        platform="docker",
        region="local",
        max_sessions=10,
        api_key=key,
        key_file=settings.data_dir / "local-agent.key",
    )
    platform = DockerPlatform.from_settings(agent_settings)
    log.info("local Docker agent %s starting", LOCAL_AGENT)
    try:
        await AgentRuntime(settings=agent_settings, platform=platform, key=key).run()
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
