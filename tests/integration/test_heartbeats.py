"""Batched heartbeats: the latest report per agent lands in the database at the next flush, a
stale epoch or a revoked key changes nothing, and a disconnect is never overwritten by an older
heartbeat."""

from __future__ import annotations

from streamspace.control_plane.db.records import AgentRecord
from tests.support.app import context, running_app


async def agent_row(app, agent_id: str) -> AgentRecord:  # type: ignore[no-untyped-def]
    async with context(app).db() as db:
        agent = await db.get(AgentRecord, agent_id)
        assert agent is not None
        return agent


async def test_latest_report_is_written_once_per_flush(database_url: str) -> None:
    async with running_app(database_url=database_url) as (app, _):
        ctx = context(app)
        async with ctx.db.begin() as db:
            for agent_id in ("hb-1", "hb-2", "hb-4"):
                db.add(
                    AgentRecord(
                        id=agent_id, platform="memory", approval_status="approved", api_key_hash="k"
                    )
                )
            db.add(
                AgentRecord(
                    id="hb-3",
                    platform="memory",
                    approval_status="approved",
                    epoch=5,
                    api_key_hash="k",
                )
            )
        writer = ctx.hub.heartbeats

        def record(agent_id: str, *, epoch: int = 0, key: str = "k", active: int) -> None:
            writer.record(
                agent_id=agent_id,
                epoch=epoch,
                key_hash=key,
                active=active,
                draining=False,
                capacity=None,
            )

        record("hb-1", active=1)
        writer.record(
            agent_id="hb-1",
            epoch=0,
            key_hash="k",
            active=3,
            draining=True,
            capacity={"maxSessions": 7},
        )
        record("hb-2", active=2)
        record("hb-3", epoch=4, active=9)
        record("hb-4", key="old", active=4)  # its key was rotated or rejected since
        await writer.forget("hb-2")  # disconnected: its pending report is dropped
        assert await writer.flush() == 3
        first = await agent_row(app, "hb-1")
        assert (first.status, first.active_sessions, first.draining) == ("online", 3, True)
        assert (first.max_sessions, first.capacity) == (7, {"maxSessions": 7})
        assert first.last_heartbeat is not None
        second = await agent_row(app, "hb-2")
        assert (second.status, second.last_heartbeat) == ("offline", None)
        stale = await agent_row(app, "hb-3")  # epoch 4 < 5: fenced off
        assert (stale.status, stale.active_sessions) == ("offline", 0)
        revoked = await agent_row(app, "hb-4")
        assert (revoked.status, revoked.active_sessions, revoked.last_heartbeat) == (
            "offline",
            0,
            None,
        )
        assert await writer.flush() == 0
