"""The agent WebSocket from a hostile or confused client's side: fencing by epoch across
replicas, forged and malformed frames, wrong keys, unapproved agents, oversized messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from streamspace.protocol import close_codes
from tests.support.cluster import BOOTSTRAP_KEY, cluster, enroll_agent, eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/api/v1/agents/connect"


async def connect(base: str, key: str, epoch: int = 0, **headers: str) -> ClientConnection:
    return await websockets.connect(
        ws_url(base),
        additional_headers={"X-Agent-API-Key": key, "X-Agent-Epoch": str(epoch), **headers},
        open_timeout=5,
    )


async def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    try:
        while True:
            await ws.recv()
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason or ""


def frame(type_: str, payload: dict[str, Any], epoch: int = 0) -> str:
    return json.dumps(
        {"v": 1, "id": "m1", "type": type_, "timestamp": 0, "epoch": epoch, "payload": payload}
    )


async def agents(base: str, admin: dict[str, str]) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base) as client:
        return {a["id"]: a for a in (await client.get("/api/v1/agents", headers=admin)).json()}


async def test_newer_epoch_displaces_older_across_replicas(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=2, lb=False) as c:
        a, b = c.replicas
        admin = await c.token(a.url)
        key = await enroll_agent(a.url, admin, "fenced-1")
        old = await connect(a.url, key, epoch=3)
        await old.recv()  # welcome
        new = await connect(b.url, key, epoch=4)
        await new.recv()
        code, reason = await closed_with(old)
        assert code == close_codes.CONFLICT and "displaced" in reason
        await eventually(lambda: _pod_is(b.url, admin, "fenced-1", b.pod), what="agent on B")
        # a stale epoch is refused outright, on either replica
        stale = await connect(a.url, key, epoch=2)
        code, reason = await closed_with(stale)
        assert code == close_codes.CONFLICT and "stale leader epoch 2" in reason
        # frames stamped with an old epoch on the live connection are ignored
        created = await c.call(
            b.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
        )
        assert created.status_code == 202, created.text
        command = json.loads(await new.recv())
        assert command["type"] == "command" and command["payload"]["action"] == "start_session"
        cid = command["payload"]["commandId"]
        # a failure stamped with the displaced epoch would fail the session for good...
        await new.send(frame("failed", {"commandId": cid, "error": "stale"}, epoch=3))
        await new.send(frame("complete", {"commandId": cid, "result": {}}, epoch=4))
        # ...but it is ignored, so the current epoch's result is the one applied
        await c.wait_state(created.json()["id"], "running", admin)
        await new.close()


async def _pod_is(base: str, admin: dict[str, str], agent_id: str, pod: str) -> bool:
    info = (await agents(base, admin))[agent_id]
    return bool(info["pod_name"] == pod and info["epoch"] == 4 and info["status"] == "online")


async def test_refusals_are_clear_and_change_nothing(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=1, redis=False, lb=False) as c:
        base = c.replicas[0].url
        admin = await c.token(base)
        # wrong key, bootstrap key, unapproved agent
        code, reason = await closed_with(await connect(base, "ssa_" + "0" * 64))
        assert code == close_codes.UNAUTHENTICATED and reason == "invalid agent key"
        code, reason = await closed_with(await connect(base, BOOTSTRAP_KEY))
        assert code == close_codes.FORBIDDEN and "bootstrap key only admits registration" in reason
        async with httpx.AsyncClient(base_url=base) as client:
            body = {"agentId": "pending-1", "platform": "memory"}
            r = await client.post(
                "/api/v1/agents/register", json=body, headers={"X-Agent-API-Key": "nope"}
            )
            assert r.status_code == 401
            r = await client.post(
                "/api/v1/agents/register", json=body, headers={"X-Agent-API-Key": BOOTSTRAP_KEY}
            )
            assert r.status_code == 202 and r.json()["approvalStatus"] == "pending"
            assert "apiKey" not in r.json()
        key = await enroll_agent(base, admin, "agent-ok")
        # the bootstrap key cannot impersonate an approved agent, nor fetch its key twice
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.post(
                "/api/v1/agents/register",
                headers={"X-Agent-API-Key": BOOTSTRAP_KEY},
                json={"agentId": "agent-ok", "platform": "memory"},
            )
            assert r.status_code == 403 and "apiKey" not in r.text
        # protocol version mismatch
        code, reason = await closed_with(
            await connect(base, key, **{"X-StreamSpace-Protocol": "9"})
        )
        assert (
            code == close_codes.UNSUPPORTED_VERSION and "unsupported protocol version 9" in reason
        )
        # epochs that are not one: refused with a reason, never a server error
        for epoch in ("\u00b2", str(2**70), "-1", "1e3"):
            code, reason = await closed_with(await connect(base, key, **{"X-Agent-Epoch": epoch}))
            assert code == close_codes.PROTOCOL and "X-Agent-Epoch must be" in reason, epoch
        # malformed, unknown type, bad payload, oversized, binary: each closes with a reason
        cases = [
            ("not json", close_codes.PROTOCOL, "not valid JSON"),
            (frame("teleport", {}), close_codes.PROTOCOL, "invalid message"),
            (frame("complete", {"result": {}}), close_codes.PROTOCOL, "invalid complete payload"),
            ("x" * 300_000, close_codes.TOO_BIG, "larger than"),
            (b"\x00\x01", close_codes.PROTOCOL, "shorter than its stream header"),
        ]
        for data, want_code, want_reason in cases:
            ws = await connect(base, key)
            await ws.recv()
            await ws.send(data)
            code, reason = await closed_with(ws)
            assert code == want_code and want_reason in reason, (data[:20], code, reason)
        # a forged result for a command that is not this agent's changes nothing
        ws = await connect(base, key)
        await ws.recv()
        await ws.send(frame("complete", {"commandId": "no-such-command", "result": {}}))
        await ws.send(frame("status", {"sessionId": "no-such-session", "state": "failed"}))
        await ws.send(frame("heartbeat", {"activeSessions": 0}))
        await eventually(lambda: _online(base, admin, "agent-ok"), what="still online")
        assert ws.close_code is None
        await ws.close()
        assert (await agents(base, admin))["pending-1"]["approval_status"] == "pending"


async def _online(base: str, admin: dict[str, str], agent_id: str) -> bool:
    return bool((await agents(base, admin))[agent_id]["status"] == "online")
