"""Two real replicas on one PostgreSQL: two creates racing for the last slot of a quota, one
on each replica, and exactly one wins, round after round (the org's row lock in the create's
transaction; services/quotas.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import Cluster, cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
ROUNDS = 6


async def _user(c: Cluster, base: str, admin: dict[str, str], name: str) -> dict[str, str]:
    r = await c.call(
        base, "POST", "/api/v1/users", admin, json={"username": name, "password": f"{name}-pass-1"}
    )
    assert r.status_code == 201, r.text
    return await c.token(base, name, f"{name}-pass-1")


async def _race(c: Cluster, creators: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(
                c.call(base, "POST", "/api/v1/sessions", user, json={"template": "terminal"})
                for base, user in creators
            )
        )
    )


def _one_wins(responses: list[httpx.Response], scope: str) -> None:
    codes = sorted(r.status_code for r in responses)
    assert codes == [202, 403], [r.text for r in responses]
    [loser] = [r for r in responses if r.status_code == 403]
    assert loser.json()["error"]["code"] == "quota_exceeded"
    assert loser.json()["error"]["quota"]["scope"] == scope


async def test_two_replicas_racing_for_the_last_slot_one_wins(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=2, lb=False) as c:
        a, b = c.replica("api-a").url, c.replica("api-b").url
        admin = await c.token(a)
        c.agent("mem-agent-1", url=a, extra={"MAX_SESSIONS": "50"})
        await c.approve("mem-agent-1", admin)
        await c.wait_online("mem-agent-1", admin)
        ann, ben = await _user(c, a, admin, "ann"), await _user(c, b, admin, "ben")
        ann_id = (await c.call(a, "GET", "/api/v1/auth/me", ann)).json()["id"]
        [org] = (await c.call(a, "GET", "/api/v1/orgs", admin)).json()

        # the org's last slot, wanted by two users at once, one through each replica
        for held in range(ROUNDS):
            r = await c.call(
                b, "PUT", f"/api/v1/orgs/{org['id']}/quota", admin, json={"sessions": held + 1}
            )
            assert r.status_code == 200 and r.json()["usage"]["sessions"] == held, r.text
            _one_wins(await _race(c, [(a, ann), (b, ben)]), "org")

        # one user's last slot, wanted by two of their requests at once
        await c.call(b, "PUT", f"/api/v1/orgs/{org['id']}/quota", admin, json={})
        for _ in range(ROUNDS):
            held = (await c.call(a, "GET", "/api/v1/quota", ann)).json()["user"]["usage"]
            r = await c.call(
                a,
                "PUT",
                f"/api/v1/users/{ann_id}/quota",
                admin,
                json={"sessions": held["sessions"] + 1},
            )
            assert r.status_code == 200, r.text
            _one_wins(await _race(c, [(a, ann), (b, ann)]), "user")

        mine = (await c.call(b, "GET", "/api/v1/quota", ann)).json()
        assert mine["org"]["usage"]["sessions"] == 2 * ROUNDS
