"""A replica that shuts down with an agent connected counts the agent it sent away
(streamspace_agent_drains_total) and says it is shutting down (streamspace_shutting_down)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.app import create_app
from streamspace.protocol import PROTOCOL_VERSION, close_codes
from tests.support.app import ADMIN_PASSWORD, login
from tests.support.cluster import BOOTSTRAP_KEY, enroll_agent
from tests.support.lean import serve
from tests.support.metrics import parse, value

pytestmark = [pytest.mark.postgres]


async def test_shutdown_counts_the_agents_it_sends_away(database_url: str) -> None:
    settings = ControlPlaneSettings(
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        agent_bootstrap_key=BOOTSTRAP_KEY,
        pod_name="api-drain",
    )
    app = create_app(settings)
    async with serve(app) as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            admin = await login(client)
        key = await enroll_agent(base, admin, "drained")
        agent = await websockets.connect(
            f"ws://127.0.0.1:{port}/api/v1/agents/connect",
            additional_headers={
                "X-Agent-API-Key": key,
                "X-Agent-Epoch": "1",
                "X-StreamSpace-Protocol": str(PROTOCOL_VERSION),
            },
        )
        await agent.recv()  # welcome: attached
        scrape = app.state.metrics.render().decode()
        assert value(parse(scrape), "streamspace_shutting_down") == 0
        assert value(parse(scrape), "streamspace_agent_drains_total") == 0
    # the server is gone: what it counted is still in its registry
    async with asyncio.timeout(10):
        await agent.wait_closed()
    assert agent.close_code in (close_codes.SERVICE_RESTART, close_codes.GOING_AWAY)
    scrape = app.state.metrics.render().decode()
    assert value(parse(scrape), "streamspace_agent_drains_total") == 1
    assert value(parse(scrape), "streamspace_shutting_down") == 1
