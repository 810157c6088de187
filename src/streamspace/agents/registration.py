"""Agent identity: register with the control plane, wait for approval, receive the agent's own
key exactly once and keep it in AGENT_KEY_FILE (mode 0600); from then on use only that key."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import httpx

from streamspace.config import AgentSettings
from streamspace.errors import ConfigError, PermissionDenied

log = logging.getLogger(__name__)


def read_key(settings: AgentSettings) -> str | None:
    if settings.api_key:
        return settings.api_key
    path = Path(settings.key_file)
    if path.exists():
        return path.read_text().strip() or None
    return None


def store_key(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    path.chmod(0o600)


def registration_body(settings: AgentSettings, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "agentId": settings.agent_id,
        "platform": settings.platform,
        "region": settings.region,
        "capacity": {"maxSessions": settings.max_sessions},
        "metadata": metadata,
    }


async def obtain_key(
    settings: AgentSettings, *, metadata: dict[str, Any], client: httpx.AsyncClient | None = None
) -> str:
    """Register (own key first, else the bootstrap key) until approved; return the agent key."""
    own = client or httpx.AsyncClient(base_url=settings.http_base_url, timeout=10)
    try:
        return await _register_until_approved(settings, own, metadata)
    finally:
        if client is None:
            await own.aclose()


async def _register_until_approved(
    settings: AgentSettings, client: httpx.AsyncClient, metadata: dict[str, Any]
) -> str:
    body = registration_body(settings, metadata)
    announced = False
    while True:
        key = read_key(settings)
        presented = key or settings.bootstrap_key
        if not presented:
            raise ConfigError(
                "no agent key: set AGENT_API_KEY, provide AGENT_KEY_FILE, or set "
                "AGENT_BOOTSTRAP_KEY for first registration"
            )
        try:
            response = await client.post(
                "/api/v1/agents/register", json=body, headers={"X-Agent-API-Key": presented}
            )
        except httpx.HTTPError as exc:
            log.warning("registration: control plane unreachable (%s); retrying", exc)
            await asyncio.sleep(settings.approval_poll_interval)
            continue
        answer = response.json() if response.content else {}
        if response.status_code == 200 and answer.get("apiKey"):
            store_key(Path(settings.key_file), answer["apiKey"])
            log.info("agent %s approved; key stored in %s", settings.agent_id, settings.key_file)
            return str(answer["apiKey"])
        if response.status_code == 200 and key:
            return key
        if response.status_code == 202:
            if not announced:
                log.info(
                    "agent %s registered; waiting for an admin to approve it", settings.agent_id
                )
                announced = True
            await asyncio.sleep(settings.approval_poll_interval)
            continue
        if response.status_code == 403 and key is None and read_key(settings):
            continue  # another replica of this agent just received and stored the key
        message = answer.get("error", {}).get("message", response.text)
        raise PermissionDenied(f"registration refused ({response.status_code}): {message}")
