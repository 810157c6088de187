"""Login, logout, me, roles, disabled users and failed-login throttling; on SQLite and
PostgreSQL, with the login-session store in the database and in a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.app import ADMIN_PASSWORD, login, make_user, running_app
from tests.support.services import flush_redis, redis_host_port


@pytest.fixture(params=["database-store", "redis-store"])
async def app_client(
    request: pytest.FixtureRequest,
    database_url: str,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    extra: dict[str, Any] = {"login_max_failures": 3}
    if request.param == "redis-store":
        await flush_redis()
        host, port = redis_host_port()
        extra |= {"cache_enabled": True, "redis_host": host, "redis_port": port}
    async with running_app(database_url=database_url, **extra) as pair:
        yield pair


async def test_login_me_logout(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _app, client = app_client
    response = await client.post(
        "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert me.json()["username"] == "admin" and me.json()["role"] == "admin"
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    after = await client.get("/api/v1/auth/me", headers=headers)
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "session_revoked"


async def test_bad_credentials_and_tokens(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = app_client
    wrong = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": {"code": "invalid_credentials", "message": "invalid username or password"}
    }
    assert (await client.get("/api/v1/auth/me")).json()["error"]["code"] == "missing_token"
    forged = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_token"


async def test_failed_logins_are_throttled_per_username(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    for _ in range(3):
        r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "bad"})
        assert r.status_code == 401
    blocked = await client.post(
        "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert blocked.json()["error"]["code"] == "rate_limited"


async def test_disabling_a_user_ends_their_logins(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    bob = await make_user(client, admin, "bob")
    assert (await client.get("/api/v1/auth/me", headers=bob)).status_code == 200
    me = (await client.get("/api/v1/auth/me", headers=bob)).json()
    r = await client.patch(f"/api/v1/users/{me['id']}", headers=admin, json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert (await client.get("/api/v1/auth/me", headers=bob)).status_code == 401
    again = await client.post(
        "/api/v1/auth/login", json={"username": "bob", "password": "user-pass-123"}
    )
    assert again.status_code == 401


async def test_users_cannot_administer(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = app_client
    admin = await login(client)
    carol = await make_user(client, admin, "carol")
    r = await client.post(
        "/api/v1/users", headers=carol, json={"username": "mallory", "password": "whatever-123"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    dup = await client.post(
        "/api/v1/users", headers=admin, json={"username": "carol", "password": "another-pass"}
    )
    assert dup.status_code == 409


async def test_a_role_change_applies_to_live_logins_at_once(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    """Logins are cached (in the process, or in Redis): promoting or demoting a user must
    still take effect on their very next request, without logging them out."""
    _, client = app_client
    admin = await login(client)
    dave = await make_user(client, admin, "dave")
    assert (await client.get("/api/v1/users", headers=dave)).status_code == 403
    me = (await client.get("/api/v1/auth/me", headers=dave)).json()
    r = await client.patch(f"/api/v1/users/{me['id']}", headers=admin, json={"role": "admin"})
    assert r.status_code == 200
    assert (await client.get("/api/v1/users", headers=dave)).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=dave)).json()["role"] == "admin"
    r = await client.patch(f"/api/v1/users/{me['id']}", headers=admin, json={"role": "user"})
    assert (await client.get("/api/v1/users", headers=dave)).status_code == 403


async def test_expired_logins_are_purged_off_the_login_path(database_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select, update

    from streamspace.control_plane.background.sweeper import Sweeper
    from streamspace.control_plane.db.records import LoginSessionRecord
    from tests.support.app import context

    async with running_app(database_url=database_url) as (app, client):
        expired, live = await login(client), await login(client)
        ctx = context(app)
        async with ctx.db.begin() as session:
            first = (await session.scalars(select(LoginSessionRecord.id))).first()
            await session.execute(
                update(LoginSessionRecord)
                .where(LoginSessionRecord.id == first)
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
        sweeper = Sweeper(
            db=ctx.db,
            hub=ctx.hub,
            settings=ctx.settings,
            metrics=ctx.metrics,
            sessions=ctx.session_service,
        )
        await sweeper.sweep_once()
        async with ctx.db() as session:
            assert first not in list(await session.scalars(select(LoginSessionRecord.id)))
        statuses = {
            (await client.get("/api/v1/auth/me", headers=h)).status_code for h in (expired, live)
        }
        assert statuses == {200, 401}  # the purged one is refused, the other one still works
