"""An agent acts only on its own sessions, and an admin's reject or key rotation ends its
connection at once: reports about another agent's session or command are refused, counted and
change nothing; a rejected or re-keyed agent's socket closes on whichever replica holds it, and
nothing it sends afterwards is applied; malformed handshakes get a close code and a reason."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from websockets.asyncio.client import ClientConnection

from streamspace.protocol import close_codes
from tests.multipod.test_agent_protocol import agents, closed_with, connect, frame, ws_url
from tests.support.cluster import Cluster, cluster, enroll_agent, eventually, file_elected, holds
from tests.support.metrics import scrape, value

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REFUSED = "streamspace_agent_reports_refused_total"


async def next_command(ws: ClientConnection) -> dict[str, Any]:
    """The next `command` payload the control plane sends (pings and the like skipped)."""
    while True:
        envelope = json.loads(await ws.recv())
        if envelope["type"] == "command":
            return dict(envelope["payload"])


async def start_session(c: Cluster, base: str, admin: dict[str, str], ws: ClientConnection) -> str:
    """A session placed on the agent behind `ws`, driven to running by that agent."""
    created = await c.call(base, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
    assert created.status_code == 202, created.text
    sid = str(created.json()["id"])
    command = await next_command(ws)
    assert command["action"] == "start_session" and command["sessionId"] == sid
    await ws.send(frame("ack", {"commandId": command["commandId"]}))
    result = {"vncHost": "10.0.0.7", "vncPort": 5900}
    await ws.send(frame("complete", {"commandId": command["commandId"], "result": result}))
    await c.wait_state(sid, "running", admin)
    return sid


async def refused(base: str, reason: str) -> float:
    return value(await scrape(base), REFUSED, reason=reason)


async def test_reports_about_another_agents_session_are_refused(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=1, redis=False, lb=False) as c:
        base = c.replicas[0].url
        admin = await c.token(base)
        owner = await connect(base, await enroll_agent(base, admin, "owner-1"))
        await owner.recv()  # welcome
        sid = await start_session(c, base, admin, owner)
        intruder = await connect(base, await enroll_agent(base, admin, "intruder-1"))
        await intruder.recv()
        # status reports about the owner's session: each would stop, fail or lose it
        for state in ("running", "hibernated", "failed", "missing"):
            report = {"sessionId": sid, "state": state, "vncHost": "6.6.6.6", "vncPort": 1}
            await intruder.send(frame("status", report))
        # results for the owner's outstanding command
        hibernate = await c.call(base, "POST", f"/api/v1/sessions/{sid}/hibernate", admin)
        assert hibernate.status_code == 202, hibernate.text
        command = await next_command(owner)
        assert command["action"] == "hibernate_session"
        cid = command["commandId"]
        await intruder.send(frame("ack", {"commandId": cid}))
        await intruder.send(frame("failed", {"commandId": cid, "error": "forged"}))
        await intruder.send(frame("complete", {"commandId": cid, "result": {}}))

        async def counted() -> bool:
            return (
                await refused(base, "foreign_session") == 4
                and await refused(base, "foreign_command") == 3
            )

        await eventually(counted, what="the forged reports counted as refused")
        # the intruder was told to stop nothing (a stop would be the owner's session's), and
        # its connection stays: a ping through it still comes back
        ping = asyncio.create_task(
            c.call(base, "POST", "/api/v1/admin/agents/intruder-1/ping", admin)
        )
        while (envelope := json.loads(await intruder.recv()))["type"] != "ping":
            assert envelope["type"] != "command", envelope
        await intruder.send(frame("pong", {"pingId": envelope["id"]}))
        assert (await ping).status_code == 200
        # the session is as its owner and the admin left it
        session = (await c.call(base, "GET", f"/api/v1/sessions/{sid}", admin)).json()
        assert (session["state"], session["agent_id"]) == ("hibernating", "owner-1"), session
        # and its own agent's result is the one applied
        await owner.send(frame("complete", {"commandId": cid, "result": {}}))
        await c.wait_state(sid, "hibernated", admin)
        await intruder.close()
        await owner.close()


async def _heartbeat(base: str, admin: dict[str, str], agent_id: str) -> tuple[Any, Any]:
    """What the agent's heartbeats last wrote: (when, how many sessions it reported)."""
    info = (await agents(base, admin))[agent_id]
    return info["last_heartbeat"], info["reported_sessions"]


@pytest.mark.parametrize(
    ("action", "code", "reason"),
    [
        ("reject", close_codes.FORBIDDEN, "rejected by an admin"),
        ("rotate-key", close_codes.UNAUTHENTICATED, "key was rotated"),
    ],
)
async def test_reject_or_rotation_closes_the_agent_on_another_replica(
    tmp_path: Path, action: str, code: int, reason: str
) -> None:
    async with cluster(tmp_path, replicas=2, lb=False) as c:
        a, b = c.replicas
        admin = await c.token(a.url)
        key = await enroll_agent(a.url, admin, "revoked-1")
        ws = await connect(b.url, key, epoch=7)
        await ws.recv()  # welcome
        sid = await start_session(c, a.url, admin, ws)
        await ws.send(frame("heartbeat", {"activeSessions": 1}, epoch=7))

        async def reported() -> bool:
            return bool((await _heartbeat(a.url, admin, "revoked-1"))[1] == 1)

        await eventually(reported, what="the first heartbeat written")
        before = await _heartbeat(a.url, admin, "revoked-1")
        asked = time.monotonic()
        r = await c.call(a.url, "POST", f"/api/v1/admin/agents/revoked-1/{action}", admin)
        assert r.status_code == 200, r.text
        # frames the agent had in flight as the admin acted: none of them is applied
        late = {"sessionId": sid, "state": "failed", "detail": "after the revocation"}
        for data in (frame("heartbeat", {"activeSessions": 5}, epoch=7), frame("status", late)):
            try:
                await ws.send(data)
            except Exception:
                break  # already closed: nothing in flight
        # a bound for a loaded machine, not the figure (logged: about 0.1 s when idle)
        got_code, got_reason = await asyncio.wait_for(closed_with(ws), timeout=10)
        print(f"closed {time.monotonic() - asked:.3f} s after the admin's {action}")
        assert got_code == code and reason in got_reason, (got_code, got_reason)
        # the old key connects nowhere
        for base in (a.url, b.url):
            again, _ = await closed_with(await connect(base, key, epoch=8))
            assert again in (close_codes.UNAUTHENTICATED, close_codes.FORBIDDEN)
        await eventually(
            lambda: _offline(a.url, admin, "revoked-1"), what="the agent marked offline"
        )
        info = (await agents(a.url, admin))["revoked-1"]
        assert (info["last_heartbeat"], info["reported_sessions"]) == before
        assert await c.session_state(a.url, sid, admin) == "running"
        if action == "rotate-key":
            # the operator hands the new key to the agent: it connects again
            fresh = await connect(b.url, r.json()["apiKey"], epoch=8)
            assert json.loads(await fresh.recv())["type"] == "welcome"
            await fresh.close()


async def test_malformed_handshakes_close_with_a_reason(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=1, redis=False, lb=False) as c:
        base = c.replicas[0].url
        admin = await c.token(base)
        key = await enroll_agent(base, admin, "shaken-1")
        epoch_cases = ["\u00b2", "2**70", str(2**70), "", "-1", "+7", "0x10", "9" * 400]
        for epoch in epoch_cases:
            code, reason = await closed_with(await connect(base, key, **{"X-Agent-Epoch": epoch}))
            assert code == close_codes.PROTOCOL and "X-Agent-Epoch must be" in reason, epoch
        for version in ("\u00b2", "", "abc", "01", "9" * 400, "\u00e9" * 100):
            code, reason = await closed_with(
                await connect(base, key, **{"X-StreamSpace-Protocol": version})
            )
            assert code == close_codes.UNSUPPORTED_VERSION, (version, code, reason)
            assert "unsupported protocol version" in reason
        for claimed in ("%C3%A9t%C3%A9", "%E2%80%AE" * 60, "%00", "x" * 500):
            ws = await _connect_as(base, key, claimed)
            code, reason = await closed_with(ws)
            assert code == close_codes.FORBIDDEN and "this key belongs to agent" in reason
        # the right name still works
        ws = await _connect_as(base, key, "shaken-1")
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.close()
        assert "Traceback" not in c.replicas[0].log()


async def _connect_as(base: str, key: str, agent_id: str) -> ClientConnection:
    import websockets

    return await websockets.connect(
        f"{ws_url(base)}?agent_id={agent_id}",
        additional_headers={"X-Agent-API-Key": key},
        open_timeout=5,
    )


@pytest.mark.parametrize("elected", [False, True], ids=["single", "leader-elected"])
async def test_an_agent_process_stops_for_good_when_its_key_is_rotated(
    tmp_path: Path, elected: bool
) -> None:
    """A leader-elected agent too: it releases its lease and exits, rather than campaigning
    again and being refused with every new term."""
    async with cluster(tmp_path, replicas=2, lb=False) as c:
        a, b = c.replicas
        admin = await c.token(a.url)
        agent = c.agent("rekeyed-1", url=b.url, extra=file_elected(tmp_path) if elected else {})
        await c.approve("rekeyed-1", admin)
        await c.wait_online("rekeyed-1", admin, pod=b.pod)
        r = await c.call(a.url, "POST", "/api/v1/admin/agents/rekeyed-1/rotate-key", admin)
        assert r.status_code == 200, r.text
        # it exits instead of reconnecting with the old key, and says why
        await eventually(holds(lambda: not agent.alive), timeout=30, what="the agent exits")
        assert "control plane closed the connection: 4401" in agent.log()

        async def offline() -> bool:
            return bool((await agents(a.url, admin))["rekeyed-1"]["status"] == "offline")

        await eventually(offline, what="the agent shown offline")


async def test_a_report_in_flight_when_the_announcement_is_late_changes_nothing(
    tmp_path: Path,
) -> None:
    """The revocation is committed but its announcement has not reached the agent's replica
    (Redis writes paused: a failure injection): what the agent sends meanwhile is refused on
    its own replica by the key check, which closes the connection. (Heartbeat interval 30 s:
    the replica's periodic key check, which would close it too, stays out of the way.)"""
    slow = {"AGENT_HEARTBEAT_INTERVAL": "30"}
    async with cluster(tmp_path, replicas=2, lb=False, extra_env=slow) as c:
        a, b = c.replicas
        assert c.redis is not None
        admin = await c.token(a.url)
        key = await enroll_agent(a.url, admin, "late-1")
        ws = await connect(b.url, key)
        await ws.recv()  # welcome
        sid = await start_session(c, a.url, admin, ws)
        store = redis.Redis(port=c.redis.port)
        try:
            # long enough that the close below cannot come from the announcement after it
            await store.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
            reject = asyncio.create_task(
                c.call(a.url, "POST", "/api/v1/admin/agents/late-1/reject", admin)
            )

            async def committed() -> bool:
                info = (await agents(a.url, admin))["late-1"]
                return bool(info["approval_status"] == "rejected")

            await eventually(committed, timeout=3, interval=0.05, what="the reject committed")
            late = {"sessionId": sid, "state": "failed", "detail": "after the reject"}
            await ws.send(frame("status", late))
            code, reason = await asyncio.wait_for(closed_with(ws), timeout=6)
            assert code == close_codes.FORBIDDEN and "rejected" in reason, (code, reason)
            assert (await reject).status_code == 200
        finally:
            await store.execute_command("CLIENT", "UNPAUSE")
            await store.aclose()
        assert await c.session_state(a.url, sid, admin) == "running"
        assert await refused(b.url, "agent_rejected") == 1


async def test_without_redis_the_holding_replica_closes_a_revoked_agent_by_itself(
    tmp_path: Path,
) -> None:
    """Two replicas without Redis (degraded single-pod mode: no announcement reaches the
    other): the replica holding the agent finds the revoked key in the database within a
    heartbeat interval and closes the connection."""
    async with cluster(tmp_path, replicas=2, redis=False, lb=False) as c:
        a, b = c.replicas
        admin = await c.token(a.url)
        key = await enroll_agent(a.url, admin, "unheard-1")
        ws = await connect(b.url, key)
        await ws.recv()  # welcome
        r = await c.call(a.url, "POST", "/api/v1/admin/agents/unheard-1/rotate-key", admin)
        assert r.status_code == 200, r.text
        # AGENT_HEARTBEAT_INTERVAL is 1 s in these clusters
        code, reason = await asyncio.wait_for(closed_with(ws), timeout=15)
        assert code == close_codes.UNAUTHENTICATED and "key was rotated" in reason, (code, reason)
        await eventually(
            lambda: _offline(a.url, admin, "unheard-1"), what="the agent marked offline"
        )


async def _offline(base: str, admin: dict[str, str], agent_id: str) -> bool:
    return bool((await agents(base, admin))[agent_id]["status"] == "offline")


async def test_an_adopted_session_this_installation_never_had_is_left_alone(
    tmp_path: Path,
) -> None:
    """Two installations from before installation ids that shared one engine both run an agent
    named `local-docker`: each adopts the other's unlabelled containers. A report of such a
    session (`adopted`) that this installation never had is not stopped: it is the other's.
    A labelled session it never had is an orphan, and is stopped."""
    async with cluster(tmp_path, replicas=1, redis=False, lb=False) as c:
        base = c.replicas[0].url
        admin = await c.token(base)
        ws = await connect(base, await enroll_agent(base, admin, "shared-1"))
        await ws.recv()  # welcome
        theirs = {"sessionId": "legacy-of-the-other", "state": "running", "adopted": True}
        orphan = {"sessionId": "orphan-of-ours", "state": "running"}
        await ws.send(frame("status", theirs))
        await ws.send(frame("status", orphan))
        # reports are handled in order: a stop for `theirs` would come first
        command = await next_command(ws)
        assert command["action"] == "stop_session"
        assert command["spec"]["session_id"] == "orphan-of-ours", command
        await ws.close()
