"""OpenID Connect sign-in against a real provider (oidc-provider under node): first sign-in
creates the user in the default org with the role its groups give; the login is an ordinary
one (logout ends it); a key rotation at the provider is followed by the running control plane;
a tampered state or a foreign nonce, a second redemption and a name that belongs to a local user
are refused with a clear message; the logout URL leads to the provider's end-session page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from streamspace.control_plane.db.records import AuditEventRecord
from tests.support.app import context, login, make_user, running_app
from tests.support.oidc_provider import OidcProvider, sign_in_at_provider

ACCOUNTS = {
    "olga": {
        "preferred_username": "Olga",
        "name": "Olga Admin",
        "email": "olga@example.com",
        "groups": ["staff", "streamspace-admins"],
    },
    "paul": {"preferred_username": "paul", "name": "Paul", "groups": ["staff"]},
    "admin": {"preferred_username": "admin", "groups": []},  # the local admin's name
}


@pytest.fixture
def provider(tmp_path: Path) -> AsyncIterator[OidcProvider]:
    idp = OidcProvider(log_dir=tmp_path, app_urls=["http://testserver"], accounts=ACCOUNTS)
    idp.start()
    try:
        yield idp
    finally:
        idp.stop()


async def start(client: httpx.AsyncClient, next_path: str = "/sessions") -> str:
    response = await client.get("/api/v1/auth/oidc/login", params={"next": next_path})
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def callback(client: httpx.AsyncClient, url: str) -> httpx.Response:
    parts = urlsplit(url)
    return await client.get(f"{parts.path}?{parts.query}")


async def sso(client: httpx.AsyncClient, login_name: str) -> dict[str, Any]:
    """The whole round trip as the SPA sees it: the redeemed login."""
    back = await callback(client, await sign_in_at_provider(await start(client), login=login_name))
    assert back.status_code == 302, back.text
    assert back.headers["location"] == "/auth/callback?next=%2Fsessions", back.headers
    redeemed = await client.post("/api/v1/auth/oidc/redeem")
    assert redeemed.status_code == 200, redeemed.text
    body: dict[str, Any] = redeemed.json()
    return body


async def audit_trail(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    async with context(app).db() as db:
        rows = await db.scalars(select(AuditEventRecord).order_by(AuditEventRecord.created_at))
        return [(r.action, r.actor, r.detail) for r in rows]


def sso_error(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/login", location
    return parse_qs(location.query)["sso_error"][0]


async def test_first_sign_in_provisions_the_user_with_the_role_of_their_groups(
    database_url: str, provider: OidcProvider
) -> None:
    async with running_app(database_url=database_url, **provider.settings()) as (app, client):
        offered = (await client.get("/api/v1/auth/providers")).json()
        assert offered == {
            "password": True,
            "oidc": {"name": "Test IdP", "login_url": "/api/v1/auth/oidc/login"},
        }
        body = await sso(client, "olga")
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        me = (await client.get("/api/v1/auth/me", headers=headers)).json()
        assert (me["username"], me["role"], me["platform_admin"]) == ("olga", "admin", False)
        assert body["logout_url"].startswith(f"{provider.issuer}/session/end?id_token_hint=")

        paul = await sso(client, "paul")
        paul_headers = {"Authorization": f"Bearer {paul['access_token']}"}
        assert (await client.get("/api/v1/auth/me", headers=paul_headers)).json()["role"] == "user"

        # an SSO user has no password here, and cannot be given one through the login form
        refused = await client.post(
            "/api/v1/auth/login",
            json={"username": "olga", "password": "streamspace-timing-equaliser"},
        )
        assert refused.status_code == 401

        # the admin sees who came from where; the audit trail says how they signed in
        actions = await audit_trail(app)
        assert (
            "user.provisioned",
            "olga",
            {"user": "olga", "source": "oidc", "role": "admin"},
        ) in actions
        assert ("auth.login", "olga", "oidc") in [(a, u, d.get("method")) for a, u, d in actions]

        # an ordinary login: logging out ends it
        assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
        assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401

        # the second sign-in finds the same user (no second account), role still from groups
        again = await sso(client, "olga")
        me2 = (
            await client.get(
                "/api/v1/auth/me", headers={"Authorization": f"Bearer {again['access_token']}"}
            )
        ).json()
        assert me2["id"] == me["id"]
        assert context(app).oidc is not None


async def test_a_key_rotation_at_the_provider_is_followed_without_restart(
    database_url: str, provider: OidcProvider
) -> None:
    async with running_app(database_url=database_url, **provider.settings()) as (_, client):
        await sso(client, "paul")
        provider.restart(key_id="key-2")  # the old key is no longer published
        body = await sso(client, "paul")
        me = await client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert me.json()["username"] == "paul"


async def test_tampered_state_and_foreign_nonce_are_refused(
    database_url: str, provider: OidcProvider
) -> None:
    async with running_app(database_url=database_url, **provider.settings()) as (app, client):
        url = await sign_in_at_provider(await start(client), login="paul")
        tampered = url.replace("state=", "state=x")
        assert "does not match" in sso_error(await callback(client, tampered))

        # a browser that did not start the sign-in (no state cookie)
        url = await sign_in_at_provider(await start(client), login="paul")
        client.cookies.clear()
        assert "not started in this browser" in sso_error(await callback(client, url))

        # the right state, but the nonce of another sign-in: the ID token is not for this one
        url = await sign_in_at_provider(await start(client), login="paul")
        state = parse_qs(urlsplit(url).query)["state"][0]
        verifier = _verifier(app, client)
        kept, _ = context(app).tokens.issue(
            subject="oidc",
            purpose="oidc_state",
            ttl=600,
            state=state,
            nonce="another-sign-in",
            verifier=verifier,
            next="/",
        )
        client.cookies.set("streamspace_oidc", kept, path="/api/v1/auth/oidc/callback")
        assert "nonce does not match" in sso_error(await callback(client, url))

        # nothing was signed in: no user was created
        admin = await login(client)
        users = (await client.get("/api/v1/users", headers=admin)).json()
        assert "paul" not in [u["username"] for u in users]


def _verifier(app: Any, client: httpx.AsyncClient) -> str:
    cookie = client.cookies.get("streamspace_oidc")
    return str(context(app).tokens.decode(cookie, purpose="oidc_state").extra["verifier"])


async def test_a_sign_in_is_redeemed_once(database_url: str, provider: OidcProvider) -> None:
    async with running_app(database_url=database_url, **provider.settings()) as (_, client):
        url = await sign_in_at_provider(await start(client), login="paul")
        handoff_response = await callback(client, url)
        handoff = handoff_response.cookies.get("streamspace_sso")
        assert handoff
        assert (await client.post("/api/v1/auth/oidc/redeem")).status_code == 200
        # the cookie is gone from the browser; replayed by hand it is refused all the same
        assert (await client.post("/api/v1/auth/oidc/redeem")).status_code == 401
        replay = await client.post(
            "/api/v1/auth/oidc/redeem", headers={"Cookie": f"streamspace_sso={handoff}"}
        )
        assert replay.status_code == 401
        assert "used already" in replay.json()["error"]["message"]


async def test_a_local_users_name_is_never_taken_over(
    database_url: str, provider: OidcProvider
) -> None:
    async with running_app(database_url=database_url, **provider.settings()) as (_, client):
        url = await sign_in_at_provider(await start(client), login="admin")
        message = sso_error(await callback(client, url))
        assert "already belongs to a local account" in message
        # the local admin is untouched and still signs in with their password
        assert await login(client)


async def test_a_disabled_sso_user_cannot_sign_in(
    database_url: str, provider: OidcProvider
) -> None:
    async with running_app(database_url=database_url, **provider.settings()) as (_, client):
        body = await sso(client, "paul")
        me = (
            await client.get(
                "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
            )
        ).json()
        admin = await login(client)
        disabled = await client.patch(
            f"/api/v1/users/{me['id']}", headers=admin, json={"disabled": True}
        )
        assert disabled.status_code == 200, disabled.text
        url = await sign_in_at_provider(await start(client), login="paul")
        assert "disabled" in sso_error(await callback(client, url))


async def test_without_settings_nothing_changes(database_url: str) -> None:
    async with running_app(database_url=database_url) as (_, client):
        assert (await client.get("/api/v1/auth/providers")).json() == {
            "password": True,
            "oidc": None,
        }
        assert (await client.get("/api/v1/auth/oidc/login")).status_code == 404
        assert await make_user(client, await login(client), "ulla")


async def test_a_provider_that_cannot_be_reached_is_reported_on_the_login_page(
    database_url: str, provider: OidcProvider
) -> None:
    async with running_app(database_url=database_url, **provider.settings()) as (_, client):
        provider.stop()
        message = sso_error(await client.get("/api/v1/auth/oidc/login"))
        assert "did not answer" in message
        provider.start()  # back: the next sign-in works
        assert (await sso(client, "paul"))["access_token"]


async def test_the_round_trip_may_cross_replicas(
    database_url: str, clean_redis: str, provider: OidcProvider
) -> None:
    """Started on one replica, called back on another, redeemed on the first, used on the
    second: nothing of the sign-in lives in one replica's memory."""
    redis = urlsplit(clean_redis)
    settings = provider.settings(
        agenthub_redis_enabled=True, redis_host=redis.hostname, redis_port=redis.port
    )
    async with (
        running_app(database_url=database_url, pod_name="api-a", **settings) as (_, a),
        running_app(database_url=database_url, pod_name="api-b", **settings) as (_, b),
    ):
        url = await sign_in_at_provider(await start(a), login="paul")
        b.cookies = a.cookies  # one browser, two replicas behind a load balancer
        back = await callback(b, url)
        assert back.status_code == 302 and back.headers["location"].startswith("/auth/callback")
        a.cookies = b.cookies
        redeemed = await a.post("/api/v1/auth/oidc/redeem")
        assert redeemed.status_code == 200, redeemed.text
        headers = {"Authorization": f"Bearer {redeemed.json()['access_token']}"}
        assert (await b.get("/api/v1/auth/me", headers=headers)).json()["username"] == "paul"
        # and a logout on one replica ends the login on the other
        assert (await b.post("/api/v1/auth/logout", headers=headers)).status_code == 204
        assert (await a.get("/api/v1/auth/me", headers=headers)).status_code == 401


async def test_the_password_form_can_be_turned_off(
    database_url: str, provider: OidcProvider
) -> None:
    settings = provider.settings(password_login=False)
    async with running_app(database_url=database_url, **settings) as (_, client):
        offered = (await client.get("/api/v1/auth/providers")).json()
        assert offered["password"] is False and offered["oidc"]["name"] == "Test IdP"
        assert await login(client)  # the API still takes the local admin's password
