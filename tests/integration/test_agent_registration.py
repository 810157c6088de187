"""Replicas of one agent register at the same moment (the chart's k8sAgent.replicaCount: 3
on install): every one gets its answer, none a 500, and there is one agent."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.app import login, running_app

BOOTSTRAP = "bootstrap-key-for-registration-tests-0123"


async def test_replicas_registering_together_all_get_pending(database_url: str) -> None:
    async with running_app(database_url=database_url, agent_bootstrap_key=BOOTSTRAP) as (_, client):
        body = {
            "agentId": "k8s-prod-us-east-1",
            "platform": "kubernetes",
            "region": "us-east-1",
            "capacity": {"maxSessions": 20},
            "metadata": {},
        }

        async def register() -> httpx.Response:
            return await client.post(
                "/api/v1/agents/register", json=body, headers={"X-Agent-API-Key": BOOTSTRAP}
            )

        answers = await asyncio.gather(*(register() for _ in range(8)))
        assert [a.status_code for a in answers] == [202] * 8, [a.text for a in answers]
        agents = (await client.get("/api/v1/agents", headers=await login(client))).json()
        assert [a["id"] for a in agents] == ["k8s-prod-us-east-1"]
        assert agents[0]["approval_status"] == "pending"
