"""Personal API tokens on one control plane (SQLite and PostgreSQL): created and shown once,
kept only as a hash, accepted as a bearer token, read-only ones refused on writes, revoked,
expired, dead with their disabled or removed user, audited; bad tokens get 401 JSON errors."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from streamspace.control_plane.db.records import (
    ApiTokenRecord,
    UserRecord,
    utcnow,
)
from tests.support.app import audit_events, context, login, make_user, running_app

TEMPLATE = {"name": "scripted", "display_name": "Scripted", "image": "example/desktop:1"}


async def create(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    name: str = "ci",
    scope: str = "full",
    days: int = 30,
) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/tokens",
        headers=headers,
        json={"name": name, "scope": scope, "expires_in_days": days},
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(r: httpx.Response, status: int, code: str) -> bool:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text
    return True


async def test_a_token_is_shown_once_stored_hashed_and_works_as_a_bearer_token(
    database_url: str,
) -> None:
    async with running_app(database_url=database_url) as (app, client):
        admin = await login(client)
        created = await create(client, admin, name="deploy bot")
        token = created["token"]
        assert token.startswith(f"sst_{created['id']}_") and created["prefix"] in token
        assert created["status"] == "active" and created["scope"] == "full"

        me = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert me.status_code == 200 and me.json()["username"] == "admin"
        made = await client.post("/api/v1/templates", headers=bearer(token), json=TEMPLATE)
        assert made.status_code == 201, made.text

        # never shown again: the list has no secret, and the table holds only a SHA-256
        listed = await client.get("/api/v1/tokens", headers=admin)
        assert [t["name"] for t in listed.json()] == ["deploy bot"]
        assert "token" not in listed.json()[0] and token not in listed.text
        async with context(app).db() as db:
            row = await db.get(ApiTokenRecord, created["id"])
        assert row is not None
        secret = token.split("_", 2)[2]
        assert row.secret_hash == hashlib.sha256(token.encode()).hexdigest()
        assert not any(secret in str(v) for v in vars(row).values())

        events = await audit_events(app, "token.created")
        assert [(e.actor, e.target, e.detail["token"]) for e in events] == [
            ("admin", created["id"], "deploy bot")
        ]


async def test_a_read_only_token_reads_and_is_refused_every_write(database_url: str) -> None:
    async with running_app(database_url=database_url) as (_, client):
        admin = await login(client)
        reader = bearer((await create(client, admin, scope="read"))["token"])
        assert (await client.get("/api/v1/templates", headers=reader)).status_code == 200
        assert (await client.get("/api/v1/users", headers=reader)).status_code == 200
        for method, path in [
            ("POST", "/api/v1/templates"),
            ("PATCH", "/api/v1/templates/scripted"),
            ("DELETE", "/api/v1/sessions/nothing"),
        ]:
            r = await client.request(method, path, headers=reader, json=TEMPLATE)
            assert refused(r, 403, "token_read_only")
        # the events socket only reads: its ticket is for read-only tokens too
        assert (await client.post("/api/v1/events/ticket", headers=reader)).status_code == 200


async def test_a_token_cannot_manage_tokens_passwords_users_or_orgs(database_url: str) -> None:
    async with running_app(database_url=database_url) as (_, client):
        admin = await login(client)
        full = bearer((await create(client, admin))["token"])
        me = (await client.get("/api/v1/auth/me", headers=admin)).json()
        user_id, org_id = me["id"], me["org_id"]
        for method, path, body in [
            ("GET", "/api/v1/tokens", None),
            ("POST", "/api/v1/tokens", {"name": "more", "scope": "full"}),
            ("GET", "/api/v1/admin/tokens", None),
            ("POST", "/api/v1/auth/password", {"current_password": "x", "new_password": "y" * 9}),
            ("POST", "/api/v1/auth/logout", None),
            ("POST", "/api/v1/users", {"username": "mallory", "password": "mallory-pass"}),
            ("PATCH", f"/api/v1/users/{user_id}", {"role": "user"}),
            ("POST", "/api/v1/orgs", {"name": "evil", "admin": {"username": "e", "password": "p"}}),
            # webhooks hand out signing secrets and point events elsewhere
            ("POST", "/api/v1/webhooks", {"url": "https://hooks.example.com/x", "event_types": []}),
            ("PATCH", "/api/v1/webhooks/any", {"enabled": False}),
            ("DELETE", "/api/v1/webhooks/any", None),
            # second factors
            ("POST", "/api/v1/auth/mfa/enrolment", None),
            ("POST", "/api/v1/auth/mfa/disable", {"password": "x"}),
            ("DELETE", f"/api/v1/users/{user_id}/mfa", None),
            ("PUT", f"/api/v1/orgs/{org_id}/mfa", {"required": True}),
        ]:
            r = await client.request(method, path, headers=full, json=body)
            assert refused(r, 403, "login_required")
        # an admin's full token still administers everything else
        assert (await client.get("/api/v1/users", headers=full)).status_code == 200
        made = await client.post("/api/v1/templates", headers=full, json=TEMPLATE)
        assert made.status_code == 201


async def test_bad_tokens_get_401_json_errors(database_url: str) -> None:
    async with running_app(database_url=database_url) as (_, client):
        admin = await login(client)
        token = (await create(client, admin))["token"]
        token_id = token.split("_")[1]
        for bad in [
            "garbage",
            "sst_garbage",
            "sst_0123456789abcdef_" + "x" * 43,  # unknown id
            f"sst_{token_id}_" + "x" * 43,  # wrong secret
            token[:-1],  # truncated
            f"sst_{token_id}_",
        ]:
            r = await client.get("/api/v1/auth/me", headers=bearer(bad))
            assert refused(r, 401, "invalid_token")


async def test_revoked_and_expired_tokens_are_refused(database_url: str) -> None:
    async with running_app(database_url=database_url) as (app, client):
        admin = await login(client)
        revoked, expired = await create(client, admin, name="a"), await create(client, admin)
        r = await client.delete(f"/api/v1/tokens/{revoked['id']}", headers=admin)
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        assert r.json()["revoked_by"] == "admin"
        r = await client.get("/api/v1/auth/me", headers=bearer(revoked["token"]))
        assert refused(r, 401, "token_revoked")

        async with context(app).db.begin() as db:
            await db.execute(
                update(ApiTokenRecord)
                .where(ApiTokenRecord.id == expired["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        r = await client.get("/api/v1/auth/me", headers=bearer(expired["token"]))
        assert refused(r, 401, "token_expired")
        statuses = {
            t["id"]: t["status"] for t in (await client.get("/api/v1/tokens", headers=admin)).json()
        }
        assert statuses == {revoked["id"]: "revoked", expired["id"]: "expired"}

        bad = await client.post(
            "/api/v1/tokens", headers=admin, json={"name": "x", "expires_in_days": 0}
        )
        assert bad.status_code == 422 and "error" in bad.json()
        events = await audit_events(app, "token.revoked")
        assert [(e.actor, e.target, e.detail["owner"]) for e in events] == [
            ("admin", revoked["id"], "admin")
        ]


async def test_a_disabled_or_removed_users_tokens_stop_working(database_url: str) -> None:
    async with running_app(database_url=database_url) as (app, client):
        admin = await login(client)
        alice, bob = await make_user(client, admin, "alice"), await make_user(client, admin, "bob")
        alice_token = bearer((await create(client, alice))["token"])
        bob_token = bearer((await create(client, bob))["token"])
        alice_id = (await client.get("/api/v1/auth/me", headers=alice_token)).json()["id"]
        bob_id = (await client.get("/api/v1/auth/me", headers=bob_token)).json()["id"]

        r = await client.patch(f"/api/v1/users/{alice_id}", headers=admin, json={"disabled": True})
        assert r.status_code == 200
        assert refused(
            await client.get("/api/v1/auth/me", headers=alice_token), 401, "token_revoked"
        )
        # enabling alice again does not bring her tokens back
        await client.patch(f"/api/v1/users/{alice_id}", headers=admin, json={"disabled": False})
        assert refused(
            await client.get("/api/v1/auth/me", headers=alice_token), 401, "token_revoked"
        )

        assert (await client.delete(f"/api/v1/users/{bob_id}", headers=admin)).status_code == 200
        assert refused(await client.get("/api/v1/auth/me", headers=bob_token), 401, "token_revoked")
        reasons = {
            e.detail["owner"]: e.detail["reason"] for e in await audit_events(app, "token.revoked")
        }
        assert reasons == {"alice": "account disabled", "bob": "account removed"}

        # a user disabled behind the API's back (straight in the database) is refused too
        carol = await make_user(client, admin, "carol")
        carol_token = bearer((await create(client, carol))["token"])
        async with context(app).db.begin() as db:
            await db.execute(
                update(UserRecord).where(UserRecord.username == "carol").values(disabled=True)
            )
        r = await client.get("/api/v1/auth/me", headers=carol_token)
        assert refused(r, 401, "account_disabled")


async def test_use_is_recorded_at_most_once_a_minute_and_audited(database_url: str) -> None:
    async with running_app(database_url=database_url) as (app, client):
        admin = await login(client)
        created = await create(client, admin)
        assert created["last_used_at"] is None
        for _ in range(3):
            r = await client.get("/api/v1/templates", headers=bearer(created["token"]))
            assert r.status_code == 200
        (listed,) = (await client.get("/api/v1/tokens", headers=admin)).json()
        assert listed["last_used_at"] is not None
        assert listed["last_used_address"] == "127.0.0.1"
        (used,) = await audit_events(app, "token.used")
        assert used.actor == "admin" and used.target == created["id"]
        assert used.address == "127.0.0.1"


async def test_admins_see_and_revoke_their_orgs_tokens_only(database_url: str) -> None:
    async with running_app(database_url=database_url) as (app, client):
        platform = await login(client)
        alice = await make_user(client, platform, "alice")
        alice_token = await create(client, alice, name="alice's")
        r = await client.post(
            "/api/v1/orgs",
            json={
                "name": "acme",
                "admin": {"username": "acme-admin", "password": "org-admin-pass"},
            },
            headers=platform,
        )
        assert r.status_code == 201
        acme = await login(client, "acme-admin", "org-admin-pass")
        acme_token = await create(client, acme, name="acme's")

        # alice sees only her own; a user cannot reach the admin list or another's token
        mine = (await client.get("/api/v1/tokens", headers=alice)).json()
        assert [t["name"] for t in mine] == ["alice's"]
        assert refused(
            await client.get("/api/v1/admin/tokens", headers=alice), 403, "permission_denied"
        )
        r = await client.delete(f"/api/v1/tokens/{acme_token['id']}", headers=alice)
        assert refused(r, 404, "not_found")

        # acme's admin sees acme's tokens only, and cannot revoke alice's
        listed = (await client.get("/api/v1/admin/tokens", headers=acme)).json()
        assert [t["username"] for t in listed] == ["acme-admin"]
        r = await client.delete(f"/api/v1/tokens/{alice_token['id']}", headers=acme)
        assert refused(r, 404, "not_found")

        # the platform admin sees every org's, and revokes alice's (she left)
        listed = (await client.get("/api/v1/admin/tokens", headers=platform)).json()
        assert {t["username"] for t in listed} == {"alice", "acme-admin"}
        r = await client.delete(f"/api/v1/tokens/{alice_token['id']}", headers=platform)
        assert r.status_code == 200 and r.json()["revoked_by"] == "admin"
        r = await client.get("/api/v1/auth/me", headers=bearer(alice_token["token"]))
        assert refused(r, 401, "token_revoked")
        (event,) = await audit_events(app, "token.revoked")
        assert (event.actor, event.detail["owner"]) == ("admin", "alice")
