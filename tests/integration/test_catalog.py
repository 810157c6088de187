"""The template catalog: seeded on first start, readable by users, writable by admins."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.support.app import login, make_user, running_app

NEW = {
    "name": "gimp",
    "display_name": "GIMP",
    "image": "streamspace/gimp:bookworm",
    "category": "Graphics",
    "memory_limit_mb": 2048,
    "env": {"LANG": "C.UTF-8"},
}


@pytest.fixture
async def app_client(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(database_url=database_url) as pair:
        yield pair


async def test_seeded_catalog_is_listed(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = app_client
    admin = await login(client)
    user = await make_user(client, admin, "dana")
    names = [t["name"] for t in (await client.get("/api/v1/templates", headers=user)).json()]
    assert {"terminal", "browser"} <= set(names)
    terminal = (await client.get("/api/v1/templates/terminal", headers=user)).json()
    assert terminal["image"] == "streamspace/terminal:bookworm" and terminal["vnc_port"] == 5900


async def test_admin_crud_and_validation(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = app_client
    admin = await login(client)
    created = await client.post("/api/v1/templates", headers=admin, json=NEW)
    assert created.status_code == 201, created.text
    assert created.json()["vnc_port"] == 5900 and created.json()["persistent_home"] is True
    dup = await client.post("/api/v1/templates", headers=admin, json=NEW)
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "template_exists"
    bad = await client.post("/api/v1/templates", headers=admin, json={**NEW, "name": "Bad Name!"})
    assert bad.status_code == 422 and "name" in bad.json()["error"]["message"]
    patched = await client.patch(
        "/api/v1/templates/gimp", headers=admin, json={"idle_timeout_s": 600}
    )
    assert patched.json()["idle_timeout_s"] == 600
    assert patched.json()["pull"] is None  # the platform's default until set
    never = await client.patch("/api/v1/templates/gimp", headers=admin, json={"pull": "never"})
    assert never.json()["pull"] == "never"
    odd = await client.patch("/api/v1/templates/gimp", headers=admin, json={"pull": "sometimes"})
    assert odd.status_code == 422 and "pull" in odd.json()["error"]["message"]
    back = await client.patch("/api/v1/templates/gimp", headers=admin, json={"pull": None})
    assert back.json()["pull"] is None
    assert (await client.delete("/api/v1/templates/gimp", headers=admin)).status_code == 204
    gone = await client.get("/api/v1/templates/gimp", headers=admin)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_users_cannot_write_templates(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = app_client
    user = await make_user(client, await login(client), "erin")
    assert (await client.post("/api/v1/templates", headers=user, json=NEW)).status_code == 403
    assert (await client.delete("/api/v1/templates/terminal", headers=user)).status_code == 403


async def test_egress_and_limits_fields(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """egress is optional (on unless said), can be switched off and on; 0 asks for no limit
    (the agent decides whether to allow it), 1..63 MiB is refused."""
    _, client = app_client
    admin = await login(client)
    created = await client.post("/api/v1/templates", headers=admin, json=NEW)
    assert created.json()["egress"] is True
    off = await client.patch("/api/v1/templates/gimp", headers=admin, json={"egress": False})
    assert off.json()["egress"] is False
    kept = await client.patch("/api/v1/templates/gimp", headers=admin, json={"icon": "x"})
    assert kept.json()["egress"] is False
    null = await client.patch("/api/v1/templates/gimp", headers=admin, json={"egress": None})
    assert null.status_code == 422 and "egress" in null.json()["error"]["message"]
    unlimited = await client.patch(
        "/api/v1/templates/gimp", headers=admin, json={"cpu_limit": 0, "memory_limit_mb": 0}
    )
    assert (unlimited.json()["cpu_limit"], unlimited.json()["memory_limit_mb"]) == (0, 0)
    tiny = await client.patch("/api/v1/templates/gimp", headers=admin, json={"memory_limit_mb": 8})
    assert tiny.status_code == 422 and "memory_limit_mb" in tiny.json()["error"]["message"]
