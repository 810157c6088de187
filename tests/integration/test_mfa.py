"""TOTP second factor through the API, with real codes from pyotp at the current time step and
its neighbours: enrolment, the login's second step, replays, the login throttle, recovery
codes, an org requiring a factor, an admin's reset and the audit trail; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from typer.testing import CliRunner

from streamspace.cli import app as cli_app
from streamspace.control_plane.db.records import AuditEventRecord, MfaFactorRecord
from tests.support.app import ADMIN_PASSWORD, context, login, make_user, running_app

PASSWORD = "user-pass-123"
ADMIN = {"username": "admin", "password": ADMIN_PASSWORD}
STEP = 30


@pytest.fixture
async def app_client(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(database_url=database_url, login_max_failures=3) as pair:
        yield pair


async def steady_step() -> int:
    """The current time step, once at least 5 s of it are left: the codes a test computes
    for "now" and its neighbours are then the ones the server sees as such."""
    left = STEP - time.time() % STEP
    if left < 5:
        await asyncio.sleep(left + 0.05)
    return int(time.time() // STEP)


def code(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * STEP)


async def enrol(
    client: httpx.AsyncClient, headers: dict[str, str], *, step: int
) -> tuple[str, list[str]]:
    """Enrol with the code of `step`; the secret and the recovery codes."""
    started = await client.post("/api/v1/auth/mfa/enrolment", headers=headers)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    confirmed = await client.post(
        "/api/v1/auth/mfa/enrolment/confirm", headers=headers, json={"code": code(secret, step)}
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


async def password_step(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    )


async def challenge(client: httpx.AsyncClient, username: str) -> str:
    response = await password_step(client, username)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "mfa_required"
    token: str = response.json()["mfa"]["challenge"]
    return token


async def second_step(client: httpx.AsyncClient, token: str, **proof: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login/mfa", json={"challenge": token, **proof})


async def audit_actions(
    app: FastAPI, *, target: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    async with context(app).db() as db:
        query = select(AuditEventRecord).order_by(AuditEventRecord.id)
        if target is not None:
            query = query.where(AuditEventRecord.target == target)
        return [(e.action, e.detail) for e in (await db.scalars(query)).all()]


async def user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    uid: str = (await client.get("/api/v1/auth/me", headers=headers)).json()["id"]
    return uid


async def test_enrolment_then_login_needs_a_fresh_code(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    admin = await login(client)
    alice = await make_user(client, admin, "alice")
    started = await client.post("/api/v1/auth/mfa/enrolment", headers=alice)
    body = started.json()
    parsed = pyotp.parse_uri(body["otpauth_uri"])
    assert parsed.secret == body["secret"] and parsed.name == "alice"
    assert body["qr_svg"].startswith("data:image/svg+xml")
    step = await steady_step()
    wrong = await client.post(
        "/api/v1/auth/mfa/enrolment/confirm",
        headers=alice,
        json={"code": code(body["secret"], step - 3)},
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "invalid_mfa_code"
    confirmed = await client.post(
        "/api/v1/auth/mfa/enrolment/confirm",
        headers=alice,
        json={"code": code(body["secret"], step)},
    )
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    status = (await client.get("/api/v1/auth/mfa", headers=alice)).json()
    assert status["enabled"] and status["recovery_codes_left"] == 10
    async with context(app).db() as db:
        stored = await db.get(MfaFactorRecord, await user_id(client, alice))
    assert stored is not None and body["secret"] not in stored.secret  # encrypted at rest

    # the password alone gives no token, but a clear answer and a challenge
    first = await password_step(client, "alice")
    assert first.status_code == 401 and "access_token" not in first.json()
    assert first.json()["mfa"]["enrol"] is False
    token = first.json()["mfa"]["challenge"]
    assert (
        await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 401
    replayed = await second_step(
        client, token, code=code(body["secret"], step)
    )  # spent at enrolment
    assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "invalid_mfa_code"
    done = await second_step(client, token, code=code(body["secret"], step + 1))
    assert done.status_code == 200, done.text
    headers = {"Authorization": f"Bearer {done.json()['access_token']}"}
    assert (await client.get("/api/v1/auth/me", headers=headers)).json()["username"] == "alice"
    again = await second_step(client, token, code=code(body["secret"], step + 1))
    assert again.status_code == 401 and again.json()["error"]["code"] == "mfa_challenge_spent"
    uid = await user_id(client, alice)
    actions = await audit_actions(app, target=uid)
    assert ("mfa.enrolled", {"user": "alice"}) in actions
    logins = [d for a, d in await audit_actions(app) if a == "auth.login" and d.get("mfa")]
    assert logins == [{"address": "127.0.0.1", "method": "local", "mfa": "totp"}]
    failed = [d for a, d in await audit_actions(app) if a == "auth.login_failed"]
    assert failed and failed[0]["reason"] == "wrong_mfa_code"


async def test_neighbouring_steps_accepted_older_and_replayed_refused(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    bob = await make_user(client, admin, "bob")
    step = await steady_step()
    secret, _ = await enrol(client, bob, step=step - 1)  # the previous step's code still works
    assert (
        await second_step(client, await challenge(client, "bob"), code=code(secret, step))
    ).status_code == 200
    # a code two steps old is refused; the one just used is not accepted again
    assert (
        await second_step(client, await challenge(client, "bob"), code=code(secret, step - 2))
    ).status_code == 401
    assert (
        await second_step(client, await challenge(client, "bob"), code=code(secret, step))
    ).status_code == 401
    # the next step's code (a phone a little ahead) works, then nothing older than it
    assert (
        await second_step(client, await challenge(client, "bob"), code=code(secret, step + 1))
    ).status_code == 200


async def test_wrong_codes_use_up_the_login_budget(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    carol = await make_user(client, admin, "carol")
    step = await steady_step()
    secret, _ = await enrol(client, carol, step=step)
    token = await challenge(client, "carol")
    for guess in ("000000", "111111"):
        assert (await second_step(client, token, code=guess)).status_code == 401
    # the right password again does not give the guesses back
    token = await challenge(client, "carol")
    assert (await second_step(client, token, code="222222")).status_code == 401
    blocked = await second_step(client, token, code=code(secret, step + 1))
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert (await password_step(client, "carol")).status_code == 429


async def test_a_recovery_code_works_once(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = app_client
    admin = await login(client)
    dave = await make_user(client, admin, "dave")
    _, codes = await enrol(client, dave, step=await steady_step())
    used = codes[3]
    done = await second_step(client, await challenge(client, "dave"), recovery_code=used.upper())
    assert done.status_code == 200, done.text
    headers = {"Authorization": f"Bearer {done.json()['access_token']}"}
    assert (await client.get("/api/v1/auth/mfa", headers=headers)).json()[
        "recovery_codes_left"
    ] == 9
    again = await second_step(client, await challenge(client, "dave"), recovery_code=used)
    assert again.status_code == 401
    uid = await user_id(client, dave)
    assert ("mfa.recovery_used", {"user": "dave", "recovery_codes_left": 9}) in await audit_actions(
        app, target=uid
    )
    both = await second_step(
        client, await challenge(client, "dave"), code="123456", recovery_code=used
    )
    assert both.status_code == 422
    # new codes, proven with the password: the old ones stop working
    fresh = await client.post(
        "/api/v1/auth/mfa/recovery-codes", headers=headers, json={"password": PASSWORD}
    )
    assert fresh.status_code == 200 and len(fresh.json()["recovery_codes"]) == 10
    assert (
        await second_step(client, await challenge(client, "dave"), recovery_code=codes[4])
    ).status_code == 401
    new = fresh.json()["recovery_codes"][0]
    assert (
        await second_step(client, await challenge(client, "dave"), recovery_code=new)
    ).status_code == 200
    assert "mfa.recovery_codes_regenerated" in [a for a, _ in await audit_actions(app, target=uid)]


async def test_disabling_needs_a_code_or_the_password(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    admin = await login(client)
    erin = await make_user(client, admin, "erin")
    step = await steady_step()
    secret, _ = await enrol(client, erin, step=step)
    wrong = await client.post(
        "/api/v1/auth/mfa/disable", headers=erin, json={"password": "not-it-at-all"}
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_proof"
    ok = await client.post(
        "/api/v1/auth/mfa/disable", headers=erin, json={"code": code(secret, step + 1)}
    )
    assert ok.status_code == 204
    assert (await password_step(client, "erin")).status_code == 200
    assert "mfa.disabled" in [
        a for a, _ in await audit_actions(app, target=await user_id(client, erin))
    ]


async def test_an_org_that_requires_mfa_makes_users_enrol_at_login(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    admin = await login(client)
    frank = await make_user(client, admin, "frank")
    me = (await client.get("/api/v1/auth/me", headers=admin)).json()
    org = me["org_id"]
    refused = await client.put(f"/api/v1/orgs/{org}/mfa", headers=frank, json={"required": True})
    assert refused.status_code == 403
    turned = await client.put(f"/api/v1/orgs/{org}/mfa", headers=admin, json={"required": True})
    assert turned.json() == {"org_id": org, "required": True}
    assert (await client.get(f"/api/v1/orgs/{org}/mfa", headers=admin)).json()["required"] is True

    first = await password_step(client, "frank")
    assert first.status_code == 401
    assert (
        first.json()["error"]["code"] == "mfa_enrolment_required" and first.json()["mfa"]["enrol"]
    )
    token = first.json()["mfa"]["challenge"]
    early = await second_step(client, token, code="123456")
    assert early.status_code == 401 and early.json()["error"]["code"] == "mfa_challenge_stale"
    started = await client.post("/api/v1/auth/login/mfa/enrolment", json={"challenge": token})
    secret = started.json()["secret"]
    step = await steady_step()
    done = await second_step(client, token, code=code(secret, step))
    assert done.status_code == 200, done.text
    assert len(done.json()["recovery_codes"]) == 10
    # enrolled: from now on the code step, as for anyone with a factor
    assert (
        await second_step(client, await challenge(client, "frank"), code=code(secret, step + 1))
    ).status_code == 200
    changed = [d for a, d in await audit_actions(app) if a == "org.mfa_required_changed"]
    assert changed == [{"org": "default", "mfa_required": True}]


async def test_an_admin_resets_a_lost_factor(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = app_client
    admin = await login(client)
    gina = await make_user(client, admin, "gina")
    hank = await make_user(client, admin, "hank")
    await enrol(client, gina, step=await steady_step())
    uid = await user_id(client, gina)
    listed = {
        u["username"]: u["mfa_enabled"]
        for u in (await client.get("/api/v1/users", headers=admin)).json()
    }
    assert listed["gina"] is True and listed["hank"] is False
    assert (await client.delete(f"/api/v1/users/{uid}/mfa", headers=hank)).status_code == 403
    assert (await client.delete(f"/api/v1/users/{uid}/mfa", headers=admin)).status_code == 204
    assert (await password_step(client, "gina")).status_code == 200  # her org requires none
    assert (await client.get("/api/v1/auth/me", headers=gina)).status_code == 200  # logins stay
    resets = [(a, d) for a, d in await audit_actions(app, target=uid) if a == "mfa.reset"]
    assert resets == [("mfa.reset", {"user": "gina"})]
    listed = {
        u["username"]: u["mfa_enabled"]
        for u in (await client.get("/api/v1/users", headers=admin)).json()
    }
    assert listed["gina"] is False
    own_id = (await client.get("/api/v1/auth/me", headers=admin)).json()["id"]
    own = await client.delete(f"/api/v1/users/{own_id}/mfa", headers=admin)
    assert own.status_code == 403 and own.json()["error"]["code"] == "own_factor"


async def test_another_orgs_admin_can_neither_reset_nor_require(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    ivan = await make_user(client, admin, "ivan")
    created = await client.post(
        "/api/v1/orgs",
        headers=admin,
        json={"name": "other", "admin": {"username": "olga", "password": PASSWORD}},
    )
    assert created.status_code == 201
    olga = await login(client, "olga", PASSWORD)
    uid = await user_id(client, ivan)
    default_org = (await client.get("/api/v1/auth/me", headers=admin)).json()["org_id"]
    assert (await client.delete(f"/api/v1/users/{uid}/mfa", headers=olga)).status_code == 404
    put = await client.put(f"/api/v1/orgs/{default_org}/mfa", headers=olga, json={"required": True})
    assert put.status_code == 404
    # the platform admin may for any org
    other = created.json()["id"]
    assert (
        await client.put(f"/api/v1/orgs/{other}/mfa", headers=admin, json={"required": True})
    ).status_code == 200
    orgs = {
        o["name"]: o["mfa_required"]
        for o in (await client.get("/api/v1/orgs", headers=admin)).json()
    }
    assert orgs == {"default": False, "other": True}


async def test_one_code_used_by_parallel_sign_ins_signs_in_once(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = app_client
    admin = await login(client)
    jake = await make_user(client, admin, "jake")
    step = await steady_step()
    secret, codes = await enrol(client, jake, step=step)
    tokens = [await challenge(client, "jake") for _ in range(3)]
    same = code(secret, step + 1)
    answers = await asyncio.gather(*(second_step(client, t, code=same) for t in tokens))
    assert sorted(a.status_code for a in answers) == [200, 401, 401]
    # the two failures above are the address's (a success clears only the username's): the
    # third attempt below may be refused before its code is looked at
    tokens = [await challenge(client, "jake") for _ in range(3)]
    answers = await asyncio.gather(
        *(second_step(client, t, recovery_code=codes[0]) for t in tokens)
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200 and set(statuses[1:]) <= {401, 429}


async def test_an_operator_resets_a_locked_out_admins_factor_from_the_cli(
    database_url: str,
) -> None:
    async with running_app(database_url=database_url) as (app, client):
        admin = await login(client)
        await enrol(client, admin, step=await steady_step())
        assert (await client.post("/api/v1/auth/login", json=ADMIN)).status_code == 401
        env = {"DATABASE_URL": database_url}
        done = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["users", "reset-mfa", "admin"], env=env
        )
        assert done.exit_code == 0 and "reset the second factor of admin" in done.output
        assert (await client.post("/api/v1/auth/login", json=ADMIN)).status_code == 200
        resets = [d for a, d in await audit_actions(app) if a == "mfa.reset"]
        assert resets == [{"user": "admin"}]
        async with context(app).db() as db:
            event = await db.scalar(
                select(AuditEventRecord).where(AuditEventRecord.action == "mfa.reset")
            )
        assert event is not None and event.actor == "cli"
        again = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["users", "reset-mfa", "admin"], env=env
        )
        assert again.exit_code == 0 and "admin had no second factor" in again.output
