"""The audit trail as an admin reads it: every security-relevant action of a run of the flows is
an event with actor, target, org, the client's address and the request id; pages newest first
with a cursor; filters; an org admin sees their org only; an export as JSON lines; retention.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from streamspace.control_plane.background.sweeper import Sweeper
from streamspace.control_plane.db.records import AuditEventRecord
from tests.integration.test_sessions_api import add_online_agent
from tests.support.app import context, login, make_user, running_app


@pytest.fixture
async def app_client(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(database_url=database_url) as pair:
        yield pair


async def events(
    client: httpx.AsyncClient, headers: dict[str, str], **query: str
) -> list[dict[str, object]]:
    """Every event the filter matches, newest first, read page by page (3 a page)."""
    found: list[dict[str, object]] = []
    cursor = ""
    while True:
        r = await client.get(
            "/api/v1/audit", headers=headers, params={**query, "limit": "3", "cursor": cursor}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        found += body["events"]
        if body["next_cursor"] is None:
            return found
        cursor = body["next_cursor"]


async def test_a_run_of_the_flows_is_in_the_trail_with_who_what_and_where(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    admin = await login(client)
    rid = {"X-Request-ID": "req-audit-1"}
    bad = await client.post(
        "/api/v1/auth/login", json={"username": "admin", "password": "not-it"}, headers=rid
    )
    assert bad.status_code == 401
    user = await make_user(client, admin, "alice")
    alice_id = (await client.get("/api/v1/auth/me", headers=user)).json()["id"]
    await client.patch(f"/api/v1/users/{alice_id}", headers=admin, json={"role": "admin"})
    template = {"name": "audited", "display_name": "Audited", "image": "example/app:1"}
    assert (await client.post("/api/v1/templates", headers=admin, json=template)).is_success
    patched = await client.patch(
        "/api/v1/templates/audited", headers=admin, json={"display_name": "Audited 2"}
    )
    assert patched.is_success, patched.text
    assert (await client.delete("/api/v1/templates/audited", headers=admin)).is_success
    await add_online_agent(app)
    session = (
        await client.post("/api/v1/sessions", headers=user, json={"template": "terminal"})
    ).json()
    viewed = await client.post(
        f"/api/v1/sessions/{session['id']}/stream", headers=admin, json={"as_admin": True}
    )
    assert viewed.status_code == 200, viewed.text
    terminated = await client.delete(f"/api/v1/sessions/{session['id']}", headers=user)
    assert terminated.is_success, terminated.text
    assert (await client.post("/api/v1/auth/logout", headers=user)).status_code == 204

    trail = await events(client, admin)
    actions = [e["action"] for e in reversed(trail)]
    for expected in (
        "auth.login",
        "auth.login_failed",
        "user.created",
        "user.updated",
        "template.created",
        "template.updated",
        "template.deleted",
        "session.create",
        "session.viewed",
        "session.terminate",
        "auth.logout",
    ):
        assert expected in actions, (expected, actions)
    assert [e["id"] for e in trail] == sorted((e["id"] for e in trail), reverse=True)
    failed = next(e for e in trail if e["action"] == "auth.login_failed")
    assert failed["actor"] == "admin" and failed["request_id"] == "req-audit-1"
    assert failed["address"] == "127.0.0.1" and failed["org_id"] is not None
    assert failed["detail"] == {"reason": "invalid_credentials", "method": "local"}
    viewed_event = next(e for e in trail if e["action"] == "session.viewed")
    assert viewed_event["actor"] == "admin" and viewed_event["target"] == session["id"]
    created = next(e for e in trail if e["action"] == "user.created")
    assert created["actor"] == "admin" and created["target"] == alice_id
    # everything but the first admin (made at start-up, by no request) names its request
    assert all(e["request_id"] and e["address"] for e in trail if e["actor"] != "system")


async def test_filters_and_cursor(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = app_client
    admin = await login(client)
    for name in ("u1", "u2", "u3", "u4"):
        await make_user(client, admin, name)
    logins = await events(client, admin, action="auth.*")
    assert {e["action"] for e in logins} == {"auth.login"}
    assert sorted(str(e["actor"]) for e in logins) == ["admin", "u1", "u2", "u3", "u4"]
    only_u2 = await events(client, admin, actor="u2")
    assert [e["action"] for e in only_u2] == ["auth.login"]
    assert await events(client, admin, action="auth.") == []  # exact unless it ends in *
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await events(client, admin, since=future) == []
    assert len(await events(client, admin, until=future)) == len(await events(client, admin))

    everything = await events(client, admin)
    assert len({e["id"] for e in everything}) == len(everything)  # no page repeats one
    for cursor, code in (("abc", 422), ("-1", 422)):
        r = await client.get("/api/v1/audit", headers=admin, params={"cursor": cursor})
        assert r.status_code == code and r.json()["error"]["code"] == "invalid_cursor", r.text
    r = await client.get("/api/v1/audit", headers=admin, params={"limit": "0"})
    assert r.status_code == 422 and "error" in r.json()
    r = await client.get("/api/v1/audit", headers=admin, params={"since": "yesterday"})
    assert r.status_code == 422 and "error" in r.json()


async def test_an_org_admin_reads_their_org_only_and_users_none(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    platform = await login(client)
    created = await client.post(
        "/api/v1/orgs",
        headers=platform,
        json={"name": "acme", "admin": {"username": "acme-admin", "password": "org-admin-pass"}},
    )
    acme_id = created.json()["id"]
    acme = await login(client, "acme-admin", "org-admin-pass")
    await make_user(client, acme, "acme-user")
    await make_user(client, platform, "default-user")

    seen = await events(client, acme)
    assert seen and {e["org_id"] for e in seen} == {acme_id}
    assert "default-user" not in json.dumps(seen)
    other = await client.get("/api/v1/audit", headers=acme, params={"org_id": "someone-else"})
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "platform_admin_required"
    everyone = await events(client, platform)
    assert {"acme-user", "default-user"} <= {e["detail"].get("user") for e in everyone}  # type: ignore[union-attr]
    assert {e["org_id"] for e in await events(client, platform, org_id=acme_id)} == {acme_id}

    user = await login(client, "acme-user", "user-pass-123")
    assert (await client.get("/api/v1/audit", headers=user)).status_code == 403
    assert (await client.get("/api/v1/audit/export", headers=user)).status_code == 403
    # append-only: there is nothing to change or delete an event with
    first = seen[-1]["id"]
    for method in ("PUT", "PATCH", "DELETE"):
        r = await client.request(method, f"/api/v1/audit/{first}", headers=platform)
        assert r.status_code in (404, 405), (method, r.status_code)


async def test_export_is_every_matching_event_as_json_lines_and_is_audited(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    for i in range(5):
        await make_user(client, admin, f"export-{i}")
    paged = await events(client, admin, action="user.created")
    r = await client.get("/api/v1/audit/export", headers=admin, params={"action": "user.created"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in r.headers["content-disposition"]
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines == list(reversed(paged))  # oldest first, the same events, field for field
    exported = await events(client, admin, action="audit.exported")
    # the platform admin exported every org's: the filter names no org
    assert len(exported) == 1 and exported[0]["detail"] == {"action": "user.created"}


@pytest.mark.parametrize("days", [30, 0])
async def test_the_sweeper_purges_events_past_the_retention(database_url: str, days: int) -> None:
    """AUDIT_RETENTION_DAYS=30 deletes a 31-day-old event and keeps today's; 0 keeps all."""
    async with running_app(database_url=database_url, audit_retention_days=days) as (app, client):
        await login(client)
        ctx = context(app)
        old = datetime.now(UTC) - timedelta(days=31)
        async with ctx.db.begin() as db:
            db.add(AuditEventRecord(org_id=None, actor="x", action="old.event", created_at=old))
        sweeper = Sweeper(
            db=ctx.db,
            hub=ctx.hub,
            settings=ctx.settings,
            metrics=app.state.metrics,
            sessions=ctx.session_service,
        )
        await sweeper.sweep_once()
        async with ctx.db() as db:
            actions = set((await db.scalars(select(AuditEventRecord.action))).all())
        assert "auth.login" in actions
        assert ("old.event" in actions) is (days == 0)
