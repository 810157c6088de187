"""Two control-plane processes sharing PostgreSQL and Redis: a logout through one replica ends
the token on the other at once; so does disabling the user."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cluster import cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_logout_on_one_replica_ends_the_token_on_the_other(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=2, lb=False, extra_env={"CACHE_ENABLED": "true"}) as c:
        a, b = c.replicas
        assert "Redis cache enabled and connected" in a.log()
        token = await c.token(a.url)
        assert (await c.call(b.url, "GET", "/api/v1/auth/me", token)).status_code == 200
        assert (await c.call(b.url, "POST", "/api/v1/auth/logout", token)).status_code == 204
        for replica in (a, b):
            r = await c.call(replica.url, "GET", "/api/v1/auth/me", token)
            assert r.status_code == 401 and r.json()["error"]["code"] == "session_revoked"

        admin = await c.token(a.url)
        await c.call(
            a.url,
            "POST",
            "/api/v1/users",
            admin,
            json={"username": "vera", "password": "vera-pass-1"},
        )
        vera = await c.token(b.url, "vera", "vera-pass-1")
        me = (await c.call(b.url, "GET", "/api/v1/auth/me", vera)).json()
        r = await c.call(
            a.url, "PATCH", f"/api/v1/users/{me['id']}", admin, json={"disabled": True}
        )
        assert r.status_code == 200
        assert (await c.call(b.url, "GET", "/api/v1/auth/me", vera)).status_code == 401
