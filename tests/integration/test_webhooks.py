"""Webhooks on one replica (SQLite and PostgreSQL): registration rules, signed deliveries of
session and agent events to a real HTTPS receiver, retries, the delivery log, redelivery, and
the quota hook the quota refusal calls."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from streamspace.control_plane.db.records import (
    AgentRecord,
    AuditEventRecord,
    SessionRecord,
    WebhookDeliveryRecord,
)
from streamspace.control_plane.services import webhook_deliveries, webhooks
from streamspace.control_plane.services.sessions import set_state
from tests.support.app import context, login, running_app
from tests.support.cluster import eventually, holds
from tests.support.webhooks import Receiver, make_ca, receiver, verify

SESSION_EVENTS = ["session.started", "session.ended", "session.failed"]


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    return make_ca(tmp_path)


@pytest.fixture
async def app_client(
    database_url: str, tls: tuple[Path, ssl.SSLContext]
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(
        database_url=database_url,
        webhook_ca_bundle=tls[0],
        webhook_deny_private_addresses=False,  # the receiver is on 127.0.0.1
        webhook_poll_interval=0.1,
        webhook_retry_base=0.1,
        webhook_max_attempts=3,
        sweep_interval=0.2,
    ) as pair:
        yield pair


@pytest.fixture
async def hook_receiver(tls: tuple[Path, ssl.SSLContext]) -> AsyncIterator[Receiver]:
    async with receiver(tls[1]) as r:
        r.answer = lambda n, req: 200 if verify(r.secret, req.headers, req.body) else 401
        yield r


async def register(
    client: httpx.AsyncClient, admin: dict[str, str], r: Receiver, events: list[str]
) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/webhooks", headers=admin, json={"url": r.url, "event_types": events}
    )
    assert resp.status_code == 201, resp.text
    r.secret = resp.json()["secret"]
    return resp.json()  # type: ignore[no-any-return]


async def start_session(app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]) -> str:
    async with context(app).db.begin() as db:
        db.add(
            AgentRecord(
                id="agent-1",
                platform="docker",
                approval_status="approved",
                status="online",
                last_heartbeat=datetime.now(UTC),
            )
        )
    r = await client.post("/api/v1/sessions", headers=admin, json={"template": "terminal"})
    assert r.status_code == 202, r.text
    sid: str = r.json()["id"]
    await move(app, sid, "starting", "running")  # as the agent's reports do
    return sid


async def move(app: FastAPI, sid: str, *states: str) -> None:
    for state in states:
        async with context(app).db.begin() as db:
            session = await db.get(SessionRecord, sid)
            assert session is not None
            set_state(session, state, reason=f"test moved it to {state}")


async def delivery_log(
    client: httpx.AsyncClient, admin: dict[str, str], hook_id: str
) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=admin)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_only_https_urls_and_no_private_addresses_by_default(tmp_path: Path) -> None:
    async with running_app(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}") as (
        _,
        client,
    ):
        admin = await login(client)
        for url, code in [
            ("http://hooks.example.com/x", "webhook_url_not_https"),
            ("https://127.0.0.1:8443/x", "webhook_url_denied"),
            ("https://169.254.169.254/latest", "webhook_url_denied"),
            ("https://localhost/x", "webhook_url_denied"),
            ("https://user:pw@hooks.example.com/x", "webhook_url_invalid"),
        ]:
            r = await client.post(
                "/api/v1/webhooks",
                headers=admin,
                json={"url": url, "event_types": ["session.started"]},
            )
            assert r.status_code == 422 and r.json()["error"]["code"] == code, (url, r.text)
        r = await client.post(
            "/api/v1/webhooks",
            headers=admin,
            json={"url": "https://hooks.example.com/x", "event_types": ["session.exploded"]},
        )
        assert r.json()["error"]["code"] == "webhook_event_unknown"


async def test_session_events_arrive_signed_once_and_tampering_is_caught(
    app_client: tuple[FastAPI, httpx.AsyncClient], hook_receiver: Receiver, tls: Any
) -> None:
    app, client = app_client
    admin = await login(client)
    hook = await register(client, admin, hook_receiver, SESSION_EVENTS)
    assert hook["secret"].startswith("whsec_")
    listed = (await client.get("/api/v1/webhooks", headers=admin)).json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]

    sid = await start_session(app, client, admin)
    await move(app, sid, "hibernating", "hibernated", "waking", "running")  # not a new start
    r = await client.delete(f"/api/v1/sessions/{sid}", headers=admin)
    assert r.status_code == 202, r.text
    await move(app, sid, "terminated")

    await eventually(holds(lambda: len(hook_receiver.requests) >= 2), what="two deliveries")
    accepted = hook_receiver.accepted()
    assert [a.event["type"] for a in accepted] == ["session.started", "session.ended"]
    assert all(a.event["data"]["session"]["id"] == sid for a in accepted)
    assert [a.headers["x-streamspace-event"] for a in accepted] == [
        "session.started",
        "session.ended",
    ]
    assert all(a.event["id"] == a.delivery for a in accepted)
    log = await eventually(
        lambda: _all_delivered(client, admin, hook["id"], 2), what="the log says delivered"
    )
    assert {(d["attempts"], d["last_status"]) for d in log} == {(1, 200)}
    assert all(d["last_response"].startswith("answer 200") for d in log)

    # The recipe refuses a changed body, a changed signature, and another secret; the
    # receiver using it answers 401 to a tampered copy of a real delivery.
    real = accepted[0]
    forged_body = real.body.replace(b"session.started", b"session.ended_")
    assert not verify(hook_receiver.secret, real.headers, forged_body)
    bad_sig = {
        **real.headers,
        "x-streamspace-signature": real.headers["x-streamspace-signature"][:-1]
        + ("0" if real.headers["x-streamspace-signature"][-1] != "0" else "1"),
    }
    assert not verify(hook_receiver.secret, bad_sig, real.body)
    assert not verify("whsec_another", real.headers, real.body)
    headers = {k: v for k, v in real.headers.items() if k.startswith("x-streamspace-")}
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=tls[0])) as c:
        replay = await c.post(hook_receiver.url, content=forged_body, headers=headers)
    assert replay.status_code == 401


async def _all_delivered(
    client: httpx.AsyncClient, admin: dict[str, str], hook_id: str, n: int
) -> list[dict[str, Any]] | None:
    log = await delivery_log(client, admin, hook_id)
    return log if len(log) == n and all(d["state"] == "delivered" for d in log) else None


async def test_failing_receiver_is_retried_failed_and_redelivered(
    app_client: tuple[FastAPI, httpx.AsyncClient], hook_receiver: Receiver
) -> None:
    app, client = app_client
    admin = await login(client)
    hook = await register(client, admin, hook_receiver, SESSION_EVENTS)
    hook_receiver.answer = lambda n, req: 500 if n == 0 else 200
    sid = await start_session(app, client, admin)
    [started] = await eventually(lambda: _all_delivered(client, admin, hook["id"], 1))
    assert started["attempts"] == 2 and started["last_status"] == 200
    assert hook_receiver.counts() == {started["id"]: 2}  # sent twice, one id
    assert len(hook_receiver.accepted()) == 1

    hook_receiver.answer = lambda n, req: 503  # down for good: 3 attempts, then failed
    await move(app, sid, "failed")

    async def failed() -> dict[str, Any] | None:
        log = await delivery_log(client, admin, hook["id"])
        return next((d for d in log if d["state"] == "failed"), None)

    gone = await eventually(failed, what="the delivery marked failed")
    assert gone["event_type"] == "session.failed" and gone["attempts"] == 3
    assert gone["last_status"] == 503 and gone["last_response"].startswith("answer 503")
    hook_receiver.answer = lambda n, req: 200
    r = await client.post(
        f"/api/v1/webhooks/{hook['id']}/deliveries/{gone['id']}/redeliver", headers=admin
    )
    assert r.status_code == 202, r.text
    await eventually(lambda: _all_delivered(client, admin, hook["id"], 2), what="redelivered")
    assert hook_receiver.counts()[gone["id"]] == 4


async def test_agent_offline_quota_and_test_events_and_admin_scope(
    app_client: tuple[FastAPI, httpx.AsyncClient], hook_receiver: Receiver
) -> None:
    app, client = app_client
    admin = await login(client)  # a platform admin
    hook = await register(client, admin, hook_receiver, ["agent.offline", "quota.reached"])
    async with context(app).db.begin() as db:
        db.add(
            AgentRecord(
                id="silent-1",
                platform="docker",
                approval_status="approved",
                status="online",
                last_heartbeat=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    async with context(app).db.begin() as db:  # a caller's call, in its transaction
        queued = await webhooks.enqueue(
            db, org_id=hook["org_id"], event_type="quota.reached", payload={"quota": "sessions"}
        )
    assert queued == 1

    async def refused(payload: dict[str, Any]) -> int:  # a refusal's call, in its transaction
        async with context(app).db.begin() as db:
            return await webhooks.enqueue_unless_recent(
                db,
                org_id=hook["org_id"],
                event_type="quota.reached",
                payload=payload,
                quiet_for=3600,
            )

    for _ in range(2):  # once per quota and window however often refused
        assert await refused({"quota": "sessions"}) == 0
    other_quota = {"quota": "cpu"}
    assert await refused(other_quota) == 1
    r = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=admin)
    assert r.status_code == 202, r.text
    await eventually(holds(lambda: len(hook_receiver.accepted()) == 4), what="four events")
    by_type = {a.event["type"]: a.event["data"] for a in hook_receiver.accepted()}
    assert by_type["agent.offline"]["agent"]["id"] == "silent-1"
    quotas = [
        a.event["data"] for a in hook_receiver.accepted() if a.event["type"] == "quota.reached"
    ]
    assert sorted(q["quota"] for q in quotas) == ["cpu", "sessions"]
    assert "webhook.test" in by_type

    # another org's admin neither sees this webhook nor may subscribe to agent events
    r = await client.post(
        "/api/v1/orgs",
        headers=admin,
        json={"name": "other", "admin": {"username": "otheradmin", "password": "other-pass-123"}},
    )
    assert r.status_code == 201, r.text
    other = await login(client, "otheradmin", "other-pass-123")
    assert (await client.get("/api/v1/webhooks", headers=other)).json() == []
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"/api/v1/webhooks/{hook['id']}", headers=other)
        assert r.status_code == 404
    r = await client.post(
        "/api/v1/webhooks",
        headers=other,
        json={"url": hook_receiver.url, "event_types": ["agent.offline"]},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "platform_admin_required"

    r = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=admin, json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert (await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin)).status_code == 204
    async with context(app).db() as db:
        actions = (
            await db.scalars(
                select(AuditEventRecord.action).where(AuditEventRecord.target == hook["id"])
            )
        ).all()
    assert {"webhook.created", "webhook.updated", "webhook.deleted"} <= set(actions)


async def test_the_log_keeps_pending_deliveries_and_forgets_old_finished_ones(
    app_client: tuple[FastAPI, httpx.AsyncClient], hook_receiver: Receiver
) -> None:
    app, client = app_client
    admin = await login(client)
    hook = await register(client, admin, hook_receiver, ["quota.reached"])
    r = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=admin, json={"enabled": False})
    assert r.status_code == 200
    paused = (await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=admin)).json()
    r = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=admin, json={"enabled": True})
    [sent] = await eventually(lambda: _all_delivered(client, admin, hook["id"], 1))
    assert sent["id"] == paused["id"]
    async with context(app).db.begin() as db:
        row = await db.get(WebhookDeliveryRecord, sent["id"])
        assert row is not None
        row.created_at = datetime.now(UTC) - timedelta(days=31)
        db.add(
            WebhookDeliveryRecord(
                webhook_id=hook["id"],
                event_type="quota.reached",
                next_attempt_at=datetime.now(UTC) + timedelta(days=1),
                created_at=datetime.now(UTC) - timedelta(days=31),
            )
        )
    assert await webhook_deliveries.purge(context(app).db, older_than=30 * 86400) == 1
    [left] = await delivery_log(client, admin, hook["id"])
    assert left["state"] == "pending"


async def test_events_reach_their_org_only_and_only_when_the_change_commits(
    app_client: tuple[FastAPI, httpx.AsyncClient], hook_receiver: Receiver
) -> None:
    app, client = app_client
    admin = await login(client)
    ours = await register(client, admin, hook_receiver, SESSION_EVENTS)
    r = await client.post(
        "/api/v1/orgs",
        headers=admin,
        json={"name": "other", "admin": {"username": "otheradmin", "password": "other-pass-123"}},
    )
    assert r.status_code == 201, r.text
    other = await login(client, "otheradmin", "other-pass-123")
    theirs = await register(client, other, hook_receiver, SESSION_EVENTS)
    sid = await start_session(app, client, admin)
    with pytest.raises(RuntimeError):  # a failure rolls the state change back: no event
        async with context(app).db.begin() as db:
            session = await db.get(SessionRecord, sid)
            assert session is not None
            set_state(session, "failed", reason="rolled back")
            await db.flush()
            raise RuntimeError("the use case failed after the change")
    async with context(app).db() as db:
        queued = (
            await db.execute(
                select(WebhookDeliveryRecord.webhook_id, WebhookDeliveryRecord.event_type)
            )
        ).all()
    assert [tuple(q) for q in queued] == [(ours["id"], "session.started")]
    assert await delivery_log(client, other, theirs["id"]) == []


async def test_redirects_are_not_followed(
    app_client: tuple[FastAPI, httpx.AsyncClient], hook_receiver: Receiver
) -> None:
    _, client = app_client
    admin = await login(client)
    hook = await register(client, admin, hook_receiver, ["quota.reached"])
    hook_receiver.answer = lambda n, req: 302
    await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=admin)

    async def failed() -> dict[str, Any] | None:
        [d] = await delivery_log(client, admin, hook["id"])
        return d if d["state"] == "failed" else None

    gone = await eventually(failed, what="the delivery failed")
    assert gone["last_status"] == 302 and "redirects are not followed" in gone["last_error"]
    assert len(hook_receiver.requests) == 3  # WEBHOOK_MAX_ATTEMPTS, each to the registered URL


async def test_a_create_refused_by_the_quota_sends_quota_reached_once_per_window(
    app_client: tuple[FastAPI, httpx.AsyncClient], hook_receiver: Receiver
) -> None:
    """The real refusal, not a direct call: the org's one-session quota is full, the next
    creates are refused with 403, and the endpoint hears one quota.reached for the retries."""
    app, client = app_client
    admin = await login(client)
    hook = await register(client, admin, hook_receiver, ["quota.reached"])
    org_id = hook["org_id"]
    r = await client.put(f"/api/v1/orgs/{org_id}/quota", headers=admin, json={"sessions": 1})
    assert r.status_code == 200, r.text
    await start_session(app, client, admin)
    for _ in range(3):
        refused = await client.post(
            "/api/v1/sessions", headers=admin, json={"template": "terminal"}
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "quota_exceeded"

    def reached() -> list[dict[str, Any]]:
        return [a.event for a in hook_receiver.accepted() if a.event["type"] == "quota.reached"]

    await eventually(holds(lambda: reached()), what="the quota.reached delivery")
    [event] = reached()
    assert event["data"]["quota"] == {
        "scope": "org",
        "name": "default",
        "resource": "sessions",
        "used": 1,
        "requested": 1,
        "limit": 1,
    }
    assert event["data"]["user"] == "admin" and event["data"]["template"] == "terminal"
    log = await delivery_log(client, admin, hook["id"])
    assert [d["event_type"] for d in log] == ["quota.reached"]  # no second one was queued
