"""Two control-plane replicas sharing PostgreSQL and Redis: a personal API token made through
one works on the other for reads and writes; revoked through one, it is refused by the other
at once, and the events socket opened under it closes, wherever it is. Disabling its owner
through one replica stops it on the other at once too."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamspace.protocol import close_codes
from tests.multipod.test_revocation import EVENTS_ONLY, events_url, hello, opened
from tests.support.cluster import cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
TEMPLATE = {"name": "scripted", "display_name": "Scripted", "image": "example/desktop:1"}


async def test_a_token_works_on_every_replica_until_revoked_on_one(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=2, lb=False, extra_env=EVENTS_ONLY) as c:
        a, b = c.replicas
        admin = await c.token(a.url)
        tokens = {}
        for scope in ("read", "full"):
            r = await c.call(
                a.url, "POST", "/api/v1/tokens", admin, json={"name": scope, "scope": scope}
            )
            assert r.status_code == 201, r.text
            tokens[scope] = {"Authorization": f"Bearer {r.json()['token']}"}
        full_id = r.json()["id"]

        for scope, headers in tokens.items():
            r = await c.call(b.url, "GET", "/api/v1/templates", headers)
            assert r.status_code == 200, (scope, r.text)
        r = await c.call(b.url, "POST", "/api/v1/templates", tokens["full"], json=TEMPLATE)
        assert r.status_code == 201, r.text
        r = await c.call(b.url, "DELETE", "/api/v1/templates/scripted", tokens["read"])
        assert r.status_code == 403 and r.json()["error"]["code"] == "token_read_only"

        async with opened(await events_url(c, a.url, tokens["full"])) as events:
            await hello(events)
            r = await c.call(b.url, "DELETE", f"/api/v1/tokens/{full_id}", admin)
            assert r.status_code == 200, r.text
            for replica in (a, b):  # no waiting: each request reads the token's row
                r = await c.call(replica.url, "GET", "/api/v1/templates", tokens["full"])
                assert r.status_code == 401 and r.json()["error"]["code"] == "token_revoked"
            assert await events.closed() == (
                close_codes.UNAUTHENTICATED,
                "login ended: the API token was revoked",
            )
        # the other token lives on
        r = await c.call(a.url, "GET", "/api/v1/templates", tokens["read"])
        assert r.status_code == 200


async def test_disabling_the_owner_on_one_replica_stops_the_token_on_the_other(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, replicas=2, lb=False) as c:
        a, b = c.replicas
        admin = await c.token(a.url)
        vera = {"username": "vera", "password": "vera-pass-1"}
        assert (await c.call(a.url, "POST", "/api/v1/users", admin, json=vera)).status_code == 201
        login = await c.token(b.url, "vera", "vera-pass-1")
        r = await c.call(b.url, "POST", "/api/v1/tokens", login, json={"name": "cron"})
        assert r.status_code == 201, r.text
        token = {"Authorization": f"Bearer {r.json()['token']}"}
        me = await c.call(b.url, "GET", "/api/v1/auth/me", token)
        assert me.status_code == 200

        r = await c.call(
            a.url, "PATCH", f"/api/v1/users/{me.json()['id']}", admin, json={"disabled": True}
        )
        assert r.status_code == 200, r.text
        r = await c.call(b.url, "GET", "/api/v1/auth/me", token)
        assert r.status_code == 401 and r.json()["error"]["code"] == "token_revoked"
