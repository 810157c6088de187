"""The engine's shortcuts (skipped rollbacks on SQLite, autocommit reads on PostgreSQL) must
never keep a write that was not committed; with DB_PGBOUNCER it works behind PgBouncer in
transaction pooling mode."""

from __future__ import annotations

from sqlalchemy import text

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.db.engine import create_engine, reads
from streamspace.control_plane.db.migrate import upgrade
from tests.support.services import fresh_postgres, pgbouncer_url


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


async def test_statements_run_on_whichever_server_connection_pgbouncer_lends() -> None:
    """Between two of its statements, the server connection a replica's connection used is
    lent to another client's transaction: the next statement runs on another one, migrations
    and autocommit reads included."""
    async with fresh_postgres() as url:
        settings = ControlPlaneSettings(database_url=pgbouncer_url(url), db_pgbouncer=True)
        engine = create_engine(settings)
        try:
            await upgrade(engine)
            count = text("SELECT count(*) FROM alembic_version")
            async with reads(engine).connect() as first, engine.connect() as second:
                for _ in range(3):
                    assert await first.scalar(count) == 1
                    async with second.begin():
                        await second.execute(text("SELECT 1"))  # holds a server connection
                        assert await first.scalar(count) == 1
        finally:
            await engine.dispose()
