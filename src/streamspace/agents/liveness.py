"""The agent's liveness file for container health checks: while the agent's event loop runs it
touches AGENT_ALIVE_FILE every few seconds; `streamspace agent-health` checks it is fresh. It
says nothing about the control plane: an agent waiting for approval or reconnecting is alive."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)
TOUCH_INTERVAL = 5.0
MAX_AGE = 30.0  # several missed touches: a wedged loop, not one slow moment


async def keep_alive(path: Path, *, interval: float = TOUCH_INTERVAL) -> None:
    """Touch `path` every `interval` seconds until cancelled (a stopped agent's file goes stale
    within MAX_AGE, so nothing is removed)."""
    warned = False
    while True:
        try:
            await asyncio.to_thread(path.touch)
        except OSError as exc:
            if not warned:
                log.warning("cannot touch AGENT_ALIVE_FILE %s (%s); health checks fail", path, exc)
                warned = True
        await asyncio.sleep(interval)


def is_alive(path: Path, *, max_age: float = MAX_AGE, now: float | None = None) -> bool:
    """Whether `path` was touched within the last `max_age` seconds."""
    try:
        touched = path.stat().st_mtime
    except OSError:
        return False
    return (time.time() if now is None else now) - touched <= max_age
