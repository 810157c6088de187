"""Sessions REST API: placement, ownership, the state machine, and nothing half-made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from streamspace.control_plane.db.records import AgentCommandRecord, AgentRecord, SessionRecord
from tests.support.app import context, login, make_user, running_app


@pytest.fixture
async def app_client(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(database_url=database_url) as pair:
        yield pair


async def add_online_agent(
    app: FastAPI, agent_id: str = "docker-test-1", *, max_sessions: int = 5, region: str = "default"
) -> None:
    async with context(app).db.begin() as db:
        db.add(
            AgentRecord(
                id=agent_id,
                platform="docker",
                region=region,
                approval_status="approved",
                status="online",
                last_heartbeat=datetime.now(UTC),
                max_sessions=max_sessions,
            )
        )


async def count(app: FastAPI, model: type) -> int:
    async with context(app).db() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_no_agents_is_503_and_leaves_nothing(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    admin = await login(client)
    r = await client.post("/api/v1/sessions", headers=admin, json={"template": "terminal"})
    assert r.status_code == 503
    assert r.json() == {"error": {"code": "no_agents_available", "message": "No agents available"}}
    assert await count(app, SessionRecord) == 0 and await count(app, AgentCommandRecord) == 0


async def test_pending_or_unapproved_agents_get_no_sessions(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    async with context(app).db.begin() as db:
        db.add(
            AgentRecord(
                id="pending-1",
                platform="docker",
                approval_status="pending",
                status="online",
                last_heartbeat=datetime.now(UTC),
            )
        )
    r = await client.post(
        "/api/v1/sessions", headers=await login(client), json={"template": "terminal"}
    )
    assert r.status_code == 503


async def test_create_queues_a_durable_start_command(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    await add_online_agent(app)
    user = await make_user(client, await login(client), "frank")
    r = await client.post("/api/v1/sessions", headers=user, json={"template": "terminal"})
    assert r.status_code == 202, r.text
    session = r.json()
    assert session["state"] == "pending" and session["agent_id"] == "docker-test-1"
    assert session["template"] == "terminal" and session["owner"] == "frank"
    async with context(app).db() as db:
        cmd = await db.scalar(select(AgentCommandRecord))
    assert cmd is not None and cmd.action == "start_session" and cmd.status == "pending"
    assert cmd.payload["spec"]["image"] == "streamspace/terminal:bookworm"
    assert cmd.payload["spec"]["user"] == "frank"
    listed = (await client.get("/api/v1/sessions", headers=user)).json()
    assert [s["id"] for s in listed] == [session["id"]]


async def test_unknown_template_is_404(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = app_client
    await add_online_agent(app)
    r = await client.post(
        "/api/v1/sessions", headers=await login(client), json={"template": "nope"}
    )
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]


async def test_other_users_sessions_are_invisible(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    await add_online_agent(app)
    admin = await login(client)
    alice, bob = await make_user(client, admin, "alice"), await make_user(client, admin, "bob")
    sid = (
        await client.post("/api/v1/sessions", headers=alice, json={"template": "terminal"})
    ).json()["id"]
    for method, path in [("GET", ""), ("DELETE", ""), ("POST", "/hibernate"), ("POST", "/resume")]:
        r = await client.request(method, f"/api/v1/sessions/{sid}{path}", headers=bob)
        assert r.status_code == 404, (method, path, r.text)
    assert (await client.get("/api/v1/sessions", headers=bob)).json() == []
    org_view = (await client.get("/api/v1/sessions?all=true", headers=admin)).json()
    assert [s["owner"] for s in org_view] == ["alice"]
    assert (await client.get("/api/v1/sessions?all=true", headers=bob)).json() == []


async def test_state_machine_guards_actions(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = app_client
    await add_online_agent(app)
    user = await login(client)
    sid = (
        await client.post("/api/v1/sessions", headers=user, json={"template": "terminal"})
    ).json()["id"]
    r = await client.post(f"/api/v1/sessions/{sid}/hibernate", headers=user)
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "invalid_transition",
        "message": "cannot hibernate a session that is pending",
    }
    async with context(app).db.begin() as db:
        session = await db.get(SessionRecord, sid)
        assert session is not None
        session.state = "running"
    assert (await client.post(f"/api/v1/sessions/{sid}/hibernate", headers=user)).json()[
        "state"
    ] == "hibernating"
    assert (await client.post(f"/api/v1/sessions/{sid}/resume", headers=user)).status_code == 409
    terminated = await client.delete(f"/api/v1/sessions/{sid}", headers=user)
    assert terminated.status_code == 202 and terminated.json()["state"] == "terminating"
    async with context(app).db() as db:
        actions = (
            await db.scalars(
                select(AgentCommandRecord.action).order_by(AgentCommandRecord.created_at)
            )
        ).all()
    assert list(actions) == ["start_session", "hibernate_session", "stop_session"]


async def test_capacity_and_least_loaded_placement(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    await add_online_agent(app, "agent-a", max_sessions=1)
    await add_online_agent(app, "agent-b", max_sessions=2, region="eu")
    user = await login(client)
    placed = []
    for _ in range(3):
        r = await client.post("/api/v1/sessions", headers=user, json={"template": "terminal"})
        assert r.status_code == 202
        placed.append(r.json()["agent_id"])
    assert sorted(placed) == ["agent-a", "agent-b", "agent-b"]
    full = await client.post("/api/v1/sessions", headers=user, json={"template": "terminal"})
    assert full.status_code == 503
    region = await client.post(
        "/api/v1/sessions", headers=user, json={"template": "terminal", "region": "mars"}
    )
    assert region.status_code == 503
    assert region.json()["error"] == {
        "code": "no_agents_available",
        "message": "No agents available in region mars",
    }
    in_eu = await client.post(
        "/api/v1/sessions", headers=user, json={"template": "terminal", "region": "eu"}
    )
    assert in_eu.json()["error"]["message"] == "No agents available in region eu"  # full
