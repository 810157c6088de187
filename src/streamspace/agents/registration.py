"""Agent identity: register with the control plane, wait for approval, receive the agent's own
key exactly once and keep it (AGENT_KEY_FILE, or the AGENT_KEY_SECRET every replica shares:
agents/key_store.py); from then on use only that key."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from streamspace.agents.key_store import KeyStore, key_store
from streamspace.config import AgentSettings
from streamspace.errors import ConfigError, PermissionDenied

log = logging.getLogger(__name__)


async def read_key(settings: AgentSettings, store: KeyStore) -> str | None:
    return settings.api_key or await store.read()


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
    store = key_store(settings)
    try:
        return await _register_until_approved(settings, own, metadata, store)
    finally:
        await store.close()
        if client is None:
            await own.aclose()


async def _register_until_approved(
    settings: AgentSettings, client: httpx.AsyncClient, metadata: dict[str, Any], store: KeyStore
) -> str:
    body = registration_body(settings, metadata)
    announced = False
    while True:
        key = await read_key(settings, store)
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
            await store.store(answer["apiKey"])
            log.info("agent %s approved; key stored in %s", settings.agent_id, store)
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
        if response.status_code == 403 and key is None and await read_key(settings, store):
            continue  # another replica of this agent just received and stored the key
        message = answer.get("error", {}).get("message", response.text)
        raise PermissionDenied(f"registration refused ({response.status_code}): {message}")
