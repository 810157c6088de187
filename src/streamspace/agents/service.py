"""`streamspace agent`: build the platform, obtain the key, then run the runtime, directly or
only while leader (ENABLE_HA). SIGTERM stops gracefully (releasing leadership)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

from streamspace.agents.liveness import keep_alive
from streamspace.agents.platforms.base import Platform
from streamspace.agents.platforms.memory import MemoryKnobs, MemoryPlatform
from streamspace.agents.registration import obtain_key
from streamspace.agents.runtime import AgentRuntime
from streamspace.config import AgentSettings
from streamspace.errors import ConfigError

log = logging.getLogger(__name__)


def build_platform(settings: AgentSettings) -> Platform:
    if settings.platform == "memory":
        journal = os.environ.get("MEMORY_PLATFORM_JOURNAL")
        return MemoryPlatform(
            knobs=MemoryKnobs.parse(os.environ.get("MEMORY_PLATFORM", "")),
            journal=Path(journal) if journal else None,
        )
    if settings.platform == "docker":
        from streamspace.agents.platforms.docker import DockerPlatform

        return DockerPlatform.from_settings(settings)
    if settings.platform == "kubernetes":
        from streamspace.agents.platforms.kubernetes import KubernetesPlatform

        return KubernetesPlatform.from_settings(settings)
    raise ConfigError(f"PLATFORM={settings.platform} is not available in this build")


def platform_metadata(settings: AgentSettings) -> dict[str, Any]:
    if settings.platform == "kubernetes":
        return {"pod": settings.pod_name, "namespace": settings.namespace or ""}
    return {"pod": settings.pod_name, "network": settings.docker_network}


async def run_agent(settings: AgentSettings, *, platform: Platform | None = None) -> None:
    platform = platform or build_platform(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    alive = None
    if settings.alive_file is not None:
        alive = asyncio.create_task(keep_alive(settings.alive_file), name="alive-file")
    try:
        # Registration (which may wait long for approval) runs inside the work, so SIGTERM
        # stops the agent in every state.
        work = asyncio.create_task(_work(settings, platform))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (work, stopper):
            task.cancel()
        await asyncio.gather(work, stopper, return_exceptions=True)
        if work in done and work.exception():
            raise work.exception()  # type: ignore[misc]
        log.info("agent %s stopped", settings.agent_id)
    finally:
        if alive is not None:
            alive.cancel()
            await asyncio.gather(alive, return_exceptions=True)
        await platform.close()


async def _work(settings: AgentSettings, platform: Platform) -> None:
    key = await obtain_key(settings, metadata=platform_metadata(settings))
    if not settings.enable_ha:
        await AgentRuntime(settings=settings, platform=platform, key=key).run()
        return
    from streamspace.leader.factory import build_elector
    from streamspace.leader.loop import LeaderTerm, run_as_leader

    async def lead(term: LeaderTerm) -> None:
        await AgentRuntime(
            settings=settings,
            platform=platform,
            key=key,
            epoch=term.epoch,
            still_leader=term.still_leader,
        ).run()

    elector = build_elector(settings)
    try:
        await run_as_leader(
            elector=elector,
            work=lead,
            retry_period=settings.retry_period,
            renew_deadline=settings.renew_deadline,
        )
    finally:
        await elector.close()
