"""The engine's shortcuts (skipped rollbacks on SQLite, autocommit reads on PostgreSQL) must
never keep a write that was not committed."""

from __future__ import annotations

from sqlalchemy import text

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.db.engine import create_engine, reads


async def test_uncommitted_writes_are_rolled_back(database_url: str) -> None:
    engine = create_engine(ControlPlaneSettings(database_url=database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE scratch (x integer)"))
        async with engine.connect() as conn:  # left without commit
            await conn.execute(text("INSERT INTO scratch VALUES (1)"))
        try:
            async with engine.begin() as conn:  # an error inside the transaction
                await conn.execute(text("INSERT INTO scratch VALUES (2)"))
                raise RuntimeError("handler failed")
        except RuntimeError:
            pass
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO scratch VALUES (3)"))
        async with reads(engine).connect() as conn:
            rows = (await conn.execute(text("SELECT x FROM scratch"))).scalars().all()
        assert rows == [3]
    finally:
        await engine.dispose()
