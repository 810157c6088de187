"""Stream tokens: scoped to one session, single-purpose, short-lived; every misuse is refused
with a clear close code before a single VNC byte moves."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from streamspace.control_plane.auth.tokens import TokenCodec
from streamspace.protocol import close_codes
from tests.support.cluster import cluster

pytestmark = [pytest.mark.postgres]
SECRET = "a-test-jwt-secret-that-is-long-enough-0123456789"


async def refused(url: str) -> tuple[int | None, str, int]:
    received = 0
    async with websockets.connect(url, subprotocols=["binary"]) as ws:  # type: ignore[list-item]
        try:
            while True:
                received += len(await ws.recv())
        except ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason or "", received


async def test_stream_token_misuse_is_refused(tmp_path: Path) -> None:
    async with cluster(
        tmp_path, replicas=1, redis=False, lb=False, extra_env={"STREAMSPACE_JWT_SECRET": SECRET}
    ) as c:
        base = c.replicas[0].url
        ws_base = base.replace("http", "ws", 1)
        admin = await c.token(base)
        c.agent("mem-stream-1")
        await c.approve("mem-stream-1", admin)
        await c.wait_online("mem-stream-1", admin)
        await c.call(
            base,
            "POST",
            "/api/v1/users",
            admin,
            json={"username": "olga", "password": "olga-pass-1"},
        )
        olga = await c.token(base, "olga", "olga-pass-1")
        mine = (
            await c.call(base, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
        ).json()["id"]
        hers = (
            await c.call(base, "POST", "/api/v1/sessions", olga, json={"template": "terminal"})
        ).json()["id"]

        grant = (await c.call(base, "POST", f"/api/v1/sessions/{mine}/stream", admin)).json()
        assert (
            grant["url"].startswith(f"/api/v1/sessions/{mine}/vnc?token=")
            and grant["expires_in"] <= 60
        )
        token = grant["token"]
        # another user's session: no token at all (404, as if it did not exist)
        r = await c.call(base, "POST", f"/api/v1/sessions/{mine}/stream", olga)
        assert r.status_code == 404
        # the stream token cannot call the REST API
        r = await c.call(base, "GET", "/api/v1/sessions", {"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
        cases = [
            (
                f"/api/v1/sessions/{mine}/vnc?token=garbage",
                close_codes.UNAUTHENTICATED,
                "invalid token",
            ),
            (f"/api/v1/sessions/{mine}/vnc", close_codes.UNAUTHENTICATED, "invalid token"),
            (
                f"/api/v1/sessions/{hers}/vnc?token={token}",
                close_codes.UNAUTHENTICATED,
                "token is for another session",
            ),
            (
                f"/api/v1/sessions/{mine}/vnc?token={admin['Authorization'].split()[1]}",
                close_codes.UNAUTHENTICATED,
                "token not valid for this use",
            ),
        ]
        codec = TokenCodec(secret=SECRET)
        expired, _ = codec.issue(subject="x", purpose="stream", ttl=-5, sid=mine)
        cases.append(
            (
                f"/api/v1/sessions/{mine}/vnc?token={expired}",
                close_codes.UNAUTHENTICATED,
                "token expired",
            )
        )
        unbound, _ = codec.issue(subject="x", purpose="stream", ttl=30, sid=mine)
        cases.append(
            (
                f"/api/v1/sessions/{mine}/vnc?token={unbound}",
                close_codes.UNAUTHENTICATED,
                "this token is bound to no login; request a new one",
            )
        )
        peer_forged, _ = TokenCodec(secret="another-secret-0123456789-0123456789-xx").issue(
            subject="x", purpose="peer", ttl=30, sid=mine
        )
        cases.append(
            (
                f"/api/v1/internal/sessions/{mine}/vnc?token={peer_forged}",
                close_codes.UNAUTHENTICATED,
                "invalid token",
            )
        )
        for path, code, reason in cases:
            got_code, got_reason, received = await refused(ws_base + path)
            assert (got_code, got_reason, received) == (code, reason, 0), path
        # the logs never show a token
        log = c.replicas[0].log()
        assert token not in log and "token=[redacted]" in log
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/sessions/{mine}/view")).status_code == 200
