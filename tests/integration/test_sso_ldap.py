"""LDAP sign-in against a real directory (slapd with its own CA), over LDAPS and over StartTLS,
through the ordinary POST /api/v1/auth/login: a directory user signs in with their directory
password and is created with the role of their group; a wrong password is refused and counted
by the login throttle; a user outside the search filter and a filter-injecting name are refused;
a local user keeps their local password; a directory whose certificate is not trusted is
refused rather than sent passwords."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from streamspace.control_plane.db.records import AuditEventRecord
from tests.support.app import ADMIN_PASSWORD, context, login, running_app
from tests.support.slapd import Slapd


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(directory=tmp_path_factory.mktemp("slapd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["ldaps", "starttls"])
def ldap_settings(request: pytest.FixtureRequest, slapd: Slapd) -> dict[str, Any]:
    return slapd.settings(mode=request.param)


async def attempt(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )


async def me(client: httpx.AsyncClient, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    body: dict[str, Any] = (await client.get("/api/v1/auth/me", headers=headers)).json()
    return body


async def test_directory_users_sign_in_with_the_role_of_their_group(
    database_url: str, ldap_settings: dict[str, Any]
) -> None:
    async with running_app(database_url=database_url, **ldap_settings) as (app, client):
        alice = await me(client, await attempt(client, "alice", "alice-pass-123"))
        assert (alice["username"], alice["role"]) == ("alice", "admin")
        bob = await me(client, await attempt(client, "bob", "bob-pass-123"))
        assert bob["role"] == "user"
        again = await me(client, await attempt(client, "alice", "alice-pass-123"))
        assert again["id"] == alice["id"]  # found again, not created twice

        outside = await attempt(client, "carol", "carol-pass-123")  # a contractor
        assert outside.status_code == 401
        assert outside.json()["error"]["code"] == "invalid_credentials"
        assert (await attempt(client, "*", "bob-pass-123")).status_code == 401  # escaped
        assert (await attempt(client, "bob)(uid=*", "bob-pass-123")).status_code == 401

        async with context(app).db() as db:
            events = [
                (e.action, e.actor, e.detail) for e in await db.scalars(select(AuditEventRecord))
            ]
        assert (
            "user.provisioned",
            "alice",
            {"user": "alice", "source": "ldap", "role": "admin"},
        ) in events
        assert ("auth.login", "alice", "ldap") in [(a, u, d.get("method")) for a, u, d in events]

        # the local admin keeps their local password; the directory's is not theirs here
        assert await login(client, "admin", ADMIN_PASSWORD)
        assert (await attempt(client, "admin", "directory-admin-pass")).status_code == 401


async def test_wrong_passwords_are_refused_and_counted_by_the_throttle(
    database_url: str, ldap_settings: dict[str, Any]
) -> None:
    settings = {**ldap_settings, "login_max_failures": 3}
    async with running_app(database_url=database_url, **settings) as (app, client):
        for _ in range(3):
            wrong = await attempt(client, "bob", "not-bobs-password")
            assert wrong.status_code == 401, wrong.text
            assert wrong.json()["error"]["code"] == "invalid_credentials"
        throttled = await attempt(client, "bob", "bob-pass-123")
        assert throttled.status_code == 429  # the username's budget is spent
        assert int(throttled.headers["retry-after"]) > 0
        # and so is this address's, for every other name
        assert (await attempt(client, "alice", "alice-pass-123")).status_code == 429

        async with context(app).db() as db:
            failed = list(
                await db.scalars(
                    select(AuditEventRecord).where(AuditEventRecord.action == "auth.login_failed")
                )
            )
        assert [(e.actor, e.detail["method"]) for e in failed] == [("bob", "ldap")] * 3


async def test_a_directory_with_an_untrusted_certificate_is_refused(
    database_url: str, slapd: Slapd
) -> None:
    settings = {**slapd.settings(mode="ldaps"), "ldap_ca_file": None}  # the system's CAs
    async with running_app(database_url=database_url, **settings) as (_, client):
        refused = await attempt(client, "alice", "alice-pass-123")
        assert refused.status_code == 503, refused.text
        assert "LDAP" in refused.json()["error"]["message"]


async def test_a_disabled_directory_user_is_refused_like_a_wrong_password(
    database_url: str, slapd: Slapd
) -> None:
    """Their directory password is right, yet the answer is the wrong-password one (not
    "disabled", which would tell a guesser the password is right), and it is audited."""
    async with running_app(database_url=database_url, **slapd.settings(mode="ldaps")) as (
        app,
        client,
    ):
        bob = await me(client, await attempt(client, "bob", "bob-pass-123"))
        admin = await login(client, "admin", ADMIN_PASSWORD)
        r = await client.patch(f"/api/v1/users/{bob['id']}", headers=admin, json={"disabled": True})
        assert r.status_code == 200, r.text
        refused = await attempt(client, "bob", "bob-pass-123")
        wrong = await attempt(client, "bob", "not-bobs")
        assert refused.status_code == wrong.status_code == 401
        assert refused.json() == wrong.json()
        async with context(app).db() as db:
            failed = list(
                await db.scalars(
                    select(AuditEventRecord).where(AuditEventRecord.action == "auth.login_failed")
                )
            )
        assert [(e.actor, e.detail["method"]) for e in failed] == [("bob", "ldap")] * 2
