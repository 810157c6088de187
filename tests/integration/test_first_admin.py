"""Replicas started together on an empty database (deploy/compose starts three) each try to
create the first admin from STREAMSPACE_ADMIN_PASSWORD: exactly one does, and none fails to
start because another one inserted the default org or the user first."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from streamspace.config.control_plane import ControlPlaneSettings
from streamspace.control_plane.db.engine import create_engine, session_factory
from streamspace.control_plane.db.migrate import upgrade
from streamspace.control_plane.db.records import OrgRecord, UserRecord
from streamspace.control_plane.services.users import ensure_admin
from tests.support.services import fresh_postgres

pytestmark = [pytest.mark.postgres]


async def test_replicas_starting_together_create_one_admin() -> None:
    async with fresh_postgres() as url:
        engine = create_engine(ControlPlaneSettings(database_url=url))
        try:
            await upgrade(engine)
            sessions = session_factory(engine)
            created = await asyncio.gather(
                *(ensure_admin(sessions, username="admin", password="pass-word-1") for _ in "abc")
            )
            assert sorted(created) == [False, False, True]
            async with sessions() as db:
                assert await db.scalar(select(func.count()).select_from(UserRecord)) == 1
                assert await db.scalar(select(func.count()).select_from(OrgRecord)) == 1
        finally:
            await engine.dispose()
