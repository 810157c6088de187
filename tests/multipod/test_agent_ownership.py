"""Malformed agent handshakes get a close code and a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from streamspace.protocol import close_codes
from tests.multipod.test_agent_protocol import closed_with, connect, ws_url
from tests.support.cluster import cluster, enroll_agent

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REFUSED = "streamspace_agent_reports_refused_total"


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
