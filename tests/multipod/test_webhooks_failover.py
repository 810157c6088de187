"""Webhook deliveries survive the replica sending them: SIGKILLed mid-delivery, its lease
runs out and the other replica delivers the same event again, so the receiver has every event
at least once, and exactly once after deduplicating on the delivery id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.cluster import cluster, eventually, holds
from tests.support.webhooks import make_ca, receiver, verify

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_killing_the_delivering_replica_delivers_every_event_once_by_id(
    tmp_path: Path,
) -> None:
    ca_file, server_tls = make_ca(tmp_path)
    env = {
        "WEBHOOK_CA_BUNDLE": str(ca_file),
        "WEBHOOK_DENY_PRIVATE_ADDRESSES": "false",  # the receiver is on 127.0.0.1
        "WEBHOOK_POLL_INTERVAL": "0.2",
        "WEBHOOK_TIMEOUT": "4",
        "WEBHOOK_LEASE": "5",
        "WEBHOOK_RETRY_BASE": "0.2",
    }
    async with receiver(server_tls) as hooks, cluster(tmp_path, replicas=2, extra_env=env) as c:
        hooks.held[0] = asyncio.Event()  # the first delivery hangs until its sender is gone
        hooks.answer = lambda n, req: 200 if verify(hooks.secret, req.headers, req.body) else 401
        a, b = c.replicas
        admin = await c.token(a.url)
        r = await c.call(
            a.url,
            "POST",
            "/api/v1/webhooks",
            admin,
            json={"url": hooks.url, "event_types": ["session.started", "session.ended"]},
        )
        assert r.status_code == 201, r.text
        hook, hooks.secret = r.json()["id"], r.json()["secret"]
        c.agent("mem-hook-1")
        await c.approve("mem-hook-1", admin)
        await c.wait_online("mem-hook-1", admin)
        r = await c.call(a.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
        assert r.status_code == 202, r.text
        sid = r.json()["id"]

        await eventually(holds(lambda: hooks.requests), what="the first delivery attempt")
        first = hooks.requests[0].delivery
        sender = next(rep for rep in c.replicas if f"webhook delivery {first}" in rep.log())
        survivor = b if sender is a else a
        sender.kill()
        hooks.held[0].set()

        await eventually(
            holds(lambda: hooks.counts()[first] >= 2), timeout=30, what="the event sent again"
        )
        assert f"webhook delivery {first}" in survivor.log()
        r = await c.call(survivor.url, "DELETE", f"/api/v1/sessions/{sid}", admin)
        assert r.status_code == 202, r.text
        await eventually(
            holds(lambda: len(hooks.accepted()) == 2), timeout=30, what="the ended event"
        )

        accepted = hooks.accepted()
        assert [x.event["type"] for x in accepted] == ["session.started", "session.ended"]
        assert {x.event["data"]["session"]["id"] for x in accepted} == {sid}
        counts = hooks.counts()
        assert set(counts) == {x.delivery for x in accepted}  # nothing else arrived
        assert counts[first] == 2 and all(n >= 1 for n in counts.values())
        assert all(verify(hooks.secret, x.headers, x.body) for x in hooks.requests)

        log = (
            await c.call(survivor.url, "GET", f"/api/v1/webhooks/{hook}/deliveries", admin)
        ).json()
        started = next(d for d in log if d["id"] == first)
        assert started["state"] == "delivered" and started["attempts"] == 2
        assert started["last_status"] == 200
        assert f"by {sender.pod} did not finish" in started["last_error"]
