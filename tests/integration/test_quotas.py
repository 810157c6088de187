"""Quotas per user and per org: sessions, CPU and memory of sessions not ended or failed; a
create over a limit is a 403 saying which; admins set limits, users see usage. On SQLite and
PostgreSQL, in process (the race between two replicas: tests/multipod/test_quota_race.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from streamspace.control_plane.db.records import AgentRecord, SessionRecord
from tests.support.app import audit_events, context, login, make_user, running_app

# the seed catalog: terminal 1 CPU / 1024 MiB, browser 2 CPU / 2048 MiB


@pytest.fixture
async def app_client(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(database_url=database_url) as (app, client):
        await add_online_agent(app)
        yield app, client


async def add_online_agent(app: FastAPI) -> None:
    async with context(app).db.begin() as db:
        db.add(
            AgentRecord(
                id="docker-test-1",
                platform="docker",
                approval_status="approved",
                status="online",
                last_heartbeat=datetime.now(UTC),
                max_sessions=100,
            )
        )


async def create(
    client: httpx.AsyncClient, user: dict[str, str], template: str = "terminal"
) -> httpx.Response:
    return await client.post("/api/v1/sessions", headers=user, json={"template": template})


async def user_id(client: httpx.AsyncClient, user: dict[str, str]) -> str:
    return str((await client.get("/api/v1/auth/me", headers=user)).json()["id"])


async def set_user_quota(
    client: httpx.AsyncClient, admin: dict[str, str], uid: str, **limits: int | None
) -> httpx.Response:
    return await client.put(f"/api/v1/users/{uid}/quota", headers=admin, json=limits)


async def my_quota(client: httpx.AsyncClient, user: dict[str, str]) -> dict[str, Any]:
    r = await client.get("/api/v1/quota", headers=user)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def set_state(app: FastAPI, sid: str, state: str) -> None:
    async with context(app).db.begin() as db:
        session = await db.get(SessionRecord, sid)
        assert session is not None
        session.state = state


async def test_nothing_configured_limits_nothing(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    user = await make_user(client, await login(client), "nolimit")
    for _ in range(4):
        assert (await create(client, user, "browser")).status_code == 202
    quota = await my_quota(client, user)
    assert quota["user"]["limits"] == {"sessions": None, "cpu_millicores": None, "memory_mb": None}
    assert quota["user"]["usage"] == {"sessions": 4, "cpu_millicores": 8000, "memory_mb": 8192}
    assert quota["org"]["limits"]["sessions"] is None


async def test_a_user_over_their_session_limit_is_told_which_limit(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    admin = await login(client)
    user = await make_user(client, admin, "limited")
    uid = await user_id(client, user)
    r = await set_user_quota(client, admin, uid, sessions=2)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["limits"]["sessions"] == 2
    first, second = [(await create(client, user)).json()["id"] for _ in range(2)]
    refused = await create(client, user)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "sessions limit is 2 sessions and 2 sessions are in use" in error["message"]
    assert error["quota"] == {
        "scope": "user",
        "name": "limited",
        "resource": "sessions",
        "used": 2,
        "requested": 1,
        "limit": 2,
    }
    [event] = await audit_events(app, "session.create_refused")
    assert event.actor == "limited" and event.detail["quota"]["resource"] == "sessions"
    # ended and failed sessions hold nothing; a terminating one is on its way out
    await set_state(app, first, "terminated")
    assert (await create(client, user)).status_code == 202
    await set_state(app, second, "failed")
    third = await create(client, user)
    assert third.status_code == 202
    assert (await create(client, user)).status_code == 403
    await set_state(app, third.json()["id"], "running")
    assert (await client.delete(f"/api/v1/sessions/{third.json()['id']}", headers=user)).json()[
        "state"
    ] == "terminating"
    assert (await create(client, user)).status_code == 202


async def test_hibernated_sessions_keep_their_slot_and_resources(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    admin = await login(client)
    user = await make_user(client, admin, "sleeper")
    await set_user_quota(client, admin, await user_id(client, user), cpu_millicores=1000)
    sid = (await create(client, user)).json()["id"]
    await set_state(app, sid, "hibernated")
    refused = await create(client, user)
    assert refused.status_code == 403 and refused.json()["error"]["quota"]["resource"] == (
        "cpu_millicores"
    )
    resumed = await client.post(f"/api/v1/sessions/{sid}/resume", headers=user)
    assert resumed.status_code == 202  # a resume is never refused: its share was kept


async def test_cpu_and_memory_limits_count_the_templates_limits(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    user = await make_user(client, admin, "cruncher")
    uid = await user_id(client, user)
    await set_user_quota(client, admin, uid, cpu_millicores=3000, memory_mb=4096)
    assert (await create(client, user, "browser")).status_code == 202  # 2 CPU, 2048 MiB
    refused = await create(client, user, "browser")
    assert refused.status_code == 403
    assert refused.json()["error"]["quota"] == {
        "scope": "user",
        "name": "cruncher",
        "resource": "cpu_millicores",
        "used": 2000,
        "requested": 2000,
        "limit": 3000,
    }
    assert "CPU limit is 3 CPU and 2 CPU is in use" in refused.json()["error"]["message"]
    assert (await create(client, user, "terminal")).status_code == 202  # 1 CPU fits exactly
    await set_user_quota(client, admin, uid, memory_mb=3500)
    refused = await create(client, user, "terminal")
    assert refused.json()["error"]["quota"]["resource"] == "memory_mb"
    assert refused.json()["error"]["quota"]["used"] == 3072
    quota = await my_quota(client, user)
    assert quota["user"]["usage"] == {"sessions": 2, "cpu_millicores": 3000, "memory_mb": 3072}
    assert quota["user"]["own"] == {"sessions": None, "cpu_millicores": None, "memory_mb": 3500}


async def test_templates_without_limits_count_the_default_and_unlimited_ones_are_refused(
    database_url: str,
) -> None:
    async with running_app(
        database_url=database_url,
        quota_default_user_cpu_millicores=1000,
        quota_session_default_cpu=0.5,
        quota_session_default_memory_mb=256,
    ) as (app, client):
        await add_online_agent(app)
        admin = await login(client)
        for name, cpu in (("plain", None), ("unbounded", 0)):
            r = await client.post(
                "/api/v1/templates",
                headers=admin,
                json={"name": name, "display_name": name, "image": "x/y:1", "cpu_limit": cpu},
            )
            assert r.status_code == 201, r.text
        user = await make_user(client, admin, "plainuser")
        assert (await create(client, user, "plain")).status_code == 202
        assert (await create(client, user, "plain")).status_code == 202
        assert (await my_quota(client, user))["user"]["usage"]["memory_mb"] == 512
        assert (await create(client, user, "plain")).status_code == 403
        other = await make_user(client, admin, "unbounded-user")
        refused = await create(client, other, "unbounded")
        assert refused.status_code == 403
        assert "unlimited CPU" in refused.json()["error"]["message"]
        assert refused.json()["error"]["quota"]["requested"] is None


async def test_an_org_limit_holds_for_all_its_users_together(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    ann, ben = await make_user(client, admin, "ann"), await make_user(client, admin, "ben")
    [org] = (await client.get("/api/v1/orgs", headers=admin)).json()
    r = await client.put(f"/api/v1/orgs/{org['id']}/quota", headers=admin, json={"sessions": 3})
    assert r.status_code == 200, r.text
    assert r.json()["limits"]["sessions"] == 3 and r.json()["usage"]["sessions"] == 0
    for user in (ann, ben, ann):
        assert (await create(client, user)).status_code == 202
    refused = await create(client, ben)
    assert refused.status_code == 403
    assert refused.json()["error"]["quota"]["scope"] == "org"
    assert "org 'default''s sessions limit is 3 sessions" in refused.json()["error"]["message"]
    quota = await my_quota(client, ben)
    assert quota["org"]["usage"]["sessions"] == 3 and quota["user"]["usage"]["sessions"] == 1


async def test_defaults_apply_to_users_and_orgs_without_their_own(database_url: str) -> None:
    async with running_app(
        database_url=database_url, quota_default_user_sessions=1, quota_default_org_sessions=3
    ) as (app, client):
        await add_online_agent(app)
        admin = await login(client)
        carl = await make_user(client, admin, "carl")
        assert (await create(client, carl)).status_code == 202
        assert (await create(client, carl)).json()["error"]["quota"]["limit"] == 1
        quota = await my_quota(client, carl)
        assert quota["user"]["limits"]["sessions"] == 1 and quota["user"]["own"]["sessions"] is None
        # a limit of their own replaces the default, up to the org's default
        await set_user_quota(client, admin, await user_id(client, carl), sessions=5)
        assert (await create(client, carl)).status_code == 202
        assert (await create(client, carl)).status_code == 202
        refused = (await create(client, carl)).json()["error"]["quota"]
        assert (refused["scope"], refused["limit"]) == ("org", 3)


async def test_a_lowered_limit_ends_nothing_and_refuses_new_sessions(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    admin = await login(client)
    user = await make_user(client, admin, "dora")
    uid = await user_id(client, user)
    ids = [(await create(client, user)).json()["id"] for _ in range(3)]
    for sid in ids:
        await set_state(app, sid, "running")
    r = await set_user_quota(client, admin, uid, sessions=1)
    assert (
        r.json()["user"]["usage"]["sessions"] == 3 and r.json()["user"]["limits"]["sessions"] == 1
    )
    listed = (await client.get("/api/v1/sessions", headers=user)).json()
    assert sorted(s["id"] for s in listed) == sorted(ids)
    assert {s["state"] for s in listed} == {"running"}
    refused = await create(client, user)
    assert refused.status_code == 403 and refused.json()["error"]["quota"]["used"] == 3


async def test_pending_sessions_count_so_a_burst_cannot_overrun(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    user = await make_user(client, admin, "burst")
    await set_user_quota(client, admin, await user_id(client, user), sessions=2)
    results = await asyncio.gather(*(create(client, user) for _ in range(6)))
    assert sorted(r.status_code for r in results) == [202, 202, 403, 403, 403, 403]
    listed = (await client.get("/api/v1/sessions", headers=user)).json()
    assert [s["state"] for s in listed] == ["pending", "pending"]


async def test_only_admins_set_limits_and_changes_are_audited(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    platform = await login(client)
    eve = await make_user(client, platform, "eve")
    eve_id = await user_id(client, eve)
    [org] = (await client.get("/api/v1/orgs", headers=platform)).json()
    r = await set_user_quota(client, eve, eve_id, sessions=99)
    assert r.status_code == 403
    assert (await client.get(f"/api/v1/users/{eve_id}/quota", headers=eve)).status_code == 403
    r = await client.post(
        "/api/v1/orgs",
        headers=platform,
        json={"name": "acme", "admin": {"username": "acme-admin", "password": "acme-pass-1"}},
    )
    assert r.status_code == 201
    acme_admin = await login(client, "acme-admin", "acme-pass-1")
    # another org's user is not there for acme's admin; orgs' limits are the platform's
    assert (await set_user_quota(client, acme_admin, eve_id, sessions=1)).status_code == 404
    r = await client.put(f"/api/v1/orgs/{org['id']}/quota", headers=acme_admin, json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "platform_admin_required"
    r = await client.put(f"/api/v1/orgs/{org['id']}/quota", headers=platform, json={"sessions": -1})
    assert r.status_code == 422
    assert (await set_user_quota(client, platform, eve_id, sessions=2)).status_code == 200
    assert (await set_user_quota(client, platform, eve_id, memory_mb=1024)).status_code == 200
    events = await audit_events(app, "quota.updated")
    assert [e.detail for e in events] == [
        {"user": "eve", "sessions": [None, 2]},
        {"user": "eve", "sessions": [2, None], "memory_mb": [None, 1024]},
    ]
    assert events[0].actor == "admin" and events[0].target == eve_id
