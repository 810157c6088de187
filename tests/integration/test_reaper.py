"""The idle reaper picks exactly the sessions past their own template's limits, by query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from streamspace.control_plane.background.reaper import IdleReaper
from streamspace.control_plane.db.records import SessionRecord, TemplateRecord, UserRecord
from tests.support.app import context, running_app


async def test_due_sessions_follow_each_templates_limits(database_url: str) -> None:
    async with running_app(database_url=database_url) as (app, _client):
        ctx = context(app)
        now = datetime.now(UTC)
        async with ctx.db.begin() as db:
            strict, lenient = (await db.scalars(select(TemplateRecord).limit(2))).all()
            await db.execute(
                update(TemplateRecord)
                .where(TemplateRecord.id == strict.id)
                .values(idle_timeout_s=60, max_duration_s=3600)
            )
            await db.execute(
                update(TemplateRecord)
                .where(TemplateRecord.id == lenient.id)
                .values(idle_timeout_s=600, max_duration_s=36000)
            )
            user = (await db.scalars(select(UserRecord))).first()
            assert user is not None

            def session(name: str, template: TemplateRecord | None, state: str, *, idle: float,
                        age: float) -> None:  # fmt: skip
                db.add(
                    SessionRecord(
                        id=name,
                        org_id=user.org_id,
                        user_id=user.id,
                        template_id=template.id if template else None,
                        template_name=template.name if template else "gone",
                        state=state,
                        created_at=now - timedelta(seconds=age),
                        last_activity_at=now - timedelta(seconds=idle),
                    )
                )

            session("idle", strict, "running", idle=120, age=600)
            session("active", strict, "running", idle=10, age=600)
            # idle past the strict template's timeout, not its own
            session("lenient-idle", lenient, "running", idle=120, age=600)
            session("lenient-very-idle", lenient, "running", idle=1200, age=1800)
            session("hibernated-idle", strict, "hibernated", idle=1200, age=1800)
            session("hibernated-old", lenient, "hibernated", idle=50000, age=40000)
            session("running-old-and-idle", strict, "running", idle=7200, age=7200)
            session("terminated-old", strict, "terminated", idle=90000, age=90000)
            session("template-deleted", None, "running", idle=90000, age=90000)

        reaper = IdleReaper(
            db=ctx.db, settings=ctx.settings, pod="test", sessions=ctx.session_service
        )
        idle, overdue = await reaper.due()

        assert sorted(s.id for s in idle) == ["idle", "lenient-very-idle"]
        assert sorted(s.id for s in overdue) == ["hibernated-old", "running-old-and-idle"]
        assert {s.user_id for s in idle + overdue} == {user.id}
        assert {s.org_id for s in idle + overdue} == {user.org_id}
