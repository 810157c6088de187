"""Tenancy: agents, replicas and orgs are the platform's; an org's admin manages their own org's
users, templates and sessions only. Orgs are created with their first admin (API and CLI), and
an admin can remove a user. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from fastapi import FastAPI
from typer.testing import CliRunner

from streamspace.cli import app as cli
from tests.support.app import login, make_user, running_app

PLATFORM_ONLY = [
    ("GET", "/api/v1/agents", None),
    ("GET", "/api/v1/pods", None),
    ("GET", "/api/v1/admin/overview", None),
    ("POST", "/api/v1/admin/agents/local/approve", None),
    ("POST", "/api/v1/admin/agents/local/reject", None),
    ("POST", "/api/v1/admin/agents/local/rotate-key", None),
    ("POST", "/api/v1/admin/agents/local/ping", None),
    ("POST", "/api/v1/admin/agents/ping", {"agents": ["local"]}),
    ("GET", "/api/v1/orgs", None),
    ("POST", "/api/v1/orgs", {"name": "x1", "admin": {"username": "x1", "password": "p" * 8}}),
]


@pytest.fixture
async def app_client(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(database_url=database_url) as pair:
        yield pair


async def _new_org(
    client: httpx.AsyncClient, platform: dict[str, str], name: str, admin: str
) -> tuple[dict[str, object], dict[str, str]]:
    created = await client.post(
        "/api/v1/orgs",
        headers=platform,
        json={"name": name, "admin": {"username": admin, "password": "org-admin-pass"}},
    )
    assert created.status_code == 201, created.text
    return created.json(), await login(client, admin, "org-admin-pass")


async def test_the_first_admin_runs_the_platform_and_creates_orgs(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    platform = await login(client)
    me = (await client.get("/api/v1/auth/me", headers=platform)).json()
    assert me["platform_admin"] is True
    body, acme = await _new_org(client, platform, "acme", "acme-admin")
    assert body["name"] == "acme" and body["users"] == 1
    assert body["admin"]["role"] == "admin" and body["admin"]["platform_admin"] is False
    acme_me = (await client.get("/api/v1/auth/me", headers=acme)).json()
    assert acme_me["org_id"] == body["id"] and acme_me["platform_admin"] is False
    orgs = (await client.get("/api/v1/orgs", headers=platform)).json()
    assert [(o["name"], o["users"]) for o in orgs] == [("acme", 1), ("default", 1)]

    again = await client.post(
        "/api/v1/orgs",
        headers=platform,
        json={"name": "acme", "admin": {"username": "other", "password": "org-admin-pass"}},
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "org_exists"
    taken = await client.post(
        "/api/v1/orgs",
        headers=platform,
        json={"name": "beta", "admin": {"username": "acme-admin", "password": "org-admin-pass"}},
    )
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "user_exists"
    # nothing half-made: the refused org does not exist
    names = [o["name"] for o in (await client.get("/api/v1/orgs", headers=platform)).json()]
    assert names == ["acme", "default"]
    bad = await client.post(
        "/api/v1/orgs",
        headers=platform,
        json={"name": "Bad Name!", "admin": {"username": "zed", "password": "org-admin-pass"}},
    )
    assert bad.status_code == 422 and "error" in bad.json()


async def test_an_org_admin_manages_only_their_org(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    platform = await login(client)
    _, acme = await _new_org(client, platform, "acme", "acme-admin")
    for method, path, body in PLATFORM_ONLY:
        response = await client.request(method, path, headers=acme, json=body)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["code"] == "platform_admin_required"

    # their own org's users: yes; the default org's: invisible
    await make_user(client, acme, "acme-bob")
    acme_users = (await client.get("/api/v1/users", headers=acme)).json()
    assert sorted(u["username"] for u in acme_users) == ["acme-admin", "acme-bob"]
    default_users = (await client.get("/api/v1/users", headers=platform)).json()
    assert [u["username"] for u in default_users] == ["admin"]
    admin_id = default_users[0]["id"]
    hidden = await client.patch(f"/api/v1/users/{admin_id}", headers=acme, json={"disabled": True})
    assert hidden.status_code == 404
    assert (await client.delete(f"/api/v1/users/{admin_id}", headers=acme)).status_code == 404

    # only a platform admin makes platform admins
    grant = await client.post(
        "/api/v1/users",
        headers=acme,
        json={
            "username": "acme-root",
            "password": "pass-1234",
            "role": "admin",
            "platform_admin": True,
        },
    )
    assert grant.status_code == 403 and grant.json()["error"]["code"] == "platform_admin_required"
    bob = next(u for u in acme_users if u["username"] == "acme-bob")
    promote = await client.patch(
        f"/api/v1/users/{bob['id']}", headers=acme, json={"platform_admin": True}
    )
    assert promote.status_code == 403

    # templates are per org: acme's template is not in the default org's catalog
    created = await client.post(
        "/api/v1/templates",
        headers=acme,
        json={"name": "acme-term", "display_name": "Acme terminal", "image": "x/y:1"},
    )
    assert created.status_code == 201, created.text
    default_catalog = (await client.get("/api/v1/templates", headers=platform)).json()
    assert "acme-term" not in [t["name"] for t in default_catalog]


async def test_platform_admins_are_made_by_platform_admins_and_protected(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    platform = await login(client)
    await make_user(client, platform, "helper", role="admin")
    users = (await client.get("/api/v1/users", headers=platform)).json()
    helper = next(u for u in users if u["username"] == "helper")
    me = next(u for u in users if u["username"] == "admin")
    helper_login = await login(client, "helper", "user-pass-123")
    # an org admin of the default org cannot touch the platform admin
    touch = await client.patch(
        f"/api/v1/users/{me['id']}", headers=helper_login, json={"disabled": True}
    )
    assert touch.status_code == 403
    assert (await client.get("/api/v1/agents", headers=helper_login)).status_code == 403

    made = await client.patch(
        f"/api/v1/users/{helper['id']}", headers=platform, json={"platform_admin": True}
    )
    assert made.status_code == 200 and made.json()["platform_admin"] is True
    # the new right reaches their login at once (a role change refreshes cached logins)
    assert (await client.get("/api/v1/agents", headers=helper_login)).status_code == 200
    wrong = await client.post(
        "/api/v1/users",
        headers=platform,
        json={"username": "plain", "password": "pass-1234", "role": "user", "platform_admin": True},
    )
    assert wrong.status_code == 422
    self_unmake = await client.patch(
        f"/api/v1/users/{me['id']}", headers=platform, json={"platform_admin": False}
    )
    assert self_unmake.status_code == 409 and self_unmake.json()["error"]["code"] == "self_lockout"
    demoted = await client.patch(
        f"/api/v1/users/{helper['id']}", headers=platform, json={"role": "user"}
    )
    assert demoted.json()["platform_admin"] is False
    assert (await client.get("/api/v1/agents", headers=helper_login)).status_code == 403


async def test_removing_a_user_ends_their_logins_and_keeps_their_name(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    bob = await make_user(client, admin, "bob")
    bob_id = (await client.get("/api/v1/auth/me", headers=bob)).json()["id"]
    assert (await client.delete(f"/api/v1/users/{bob_id}", headers=bob)).status_code == 403

    removed = await client.delete(f"/api/v1/users/{bob_id}", headers=admin)
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"id": bob_id, "username": "bob", "sessions_not_terminated": []}
    after = await client.get("/api/v1/auth/me", headers=bob)
    assert after.status_code == 401
    relogin = await client.post(
        "/api/v1/auth/login", json={"username": "bob", "password": "user-pass-123"}
    )
    assert relogin.status_code == 401
    listed = [u["username"] for u in (await client.get("/api/v1/users", headers=admin)).json()]
    assert "bob" not in listed
    again = await client.post(
        "/api/v1/users", headers=admin, json={"username": "bob", "password": "user-pass-123"}
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "user_removed"
    # again: the same answer (a caller cut off half-way finishes ending logins and sessions)
    twice = await client.delete(f"/api/v1/users/{bob_id}", headers=admin)
    assert twice.status_code == 200 and twice.json() == removed.json()
    assert (
        await client.patch(f"/api/v1/users/{bob_id}", headers=admin, json={})
    ).status_code == 404
    me = (await client.get("/api/v1/auth/me", headers=admin)).json()
    self_remove = await client.delete(f"/api/v1/users/{me['id']}", headers=admin)
    assert self_remove.status_code == 409 and self_remove.json()["error"]["code"] == "self_lockout"


def test_the_cli_creates_an_org_with_its_admin_and_lists_orgs(tmp_path: Path) -> None:
    env = {
        "STREAMSPACE_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "",
        "STREAMSPACE_NEW_USER_PASSWORD": "org-admin-pass",
    }

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    made = run("orgs", "create", "acme", "--admin", "acme-admin")
    assert made.exit_code == 0, made.output
    assert "created org acme with admin acme-admin" in made.output
    user = run("users", "create", "acme-bob", "--org", "acme")
    assert user.exit_code == 0 and "in org acme" in user.output
    missing = run("users", "create", "zed", "--org", "nope")
    assert missing.exit_code != 0 and "no org 'nope'" in missing.output
    again = run("orgs", "create", "acme", "--admin", "someone")
    assert again.exit_code != 0 and "already exists" in again.output
    listed = run("orgs", "list")
    assert listed.exit_code == 0 and "acme\t2 users" in listed.output
