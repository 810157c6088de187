"""Run the one Alembic migration tree (SQLite and PostgreSQL alike) from code or the CLI."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe to run on every replica at start: Alembic's
    version table plus PostgreSQL's transactional DDL make a concurrent second run a no-op
    or a clean failure that the caller retries."""

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            from sqlalchemy import text

            await conn.execute(text("SELECT pg_advisory_xact_lock(815243)"))
        await conn.run_sync(upgrade_on, revision)


def head_revision() -> str:
    """The newest schema revision this StreamSpace knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migration tree has no revision"
    return head


def knows_revision(revision: str) -> bool:
    """Whether `revision` is in this StreamSpace's migration tree (a newer one's is not)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def upgrade_on(connection: Connection, revision: str = "head") -> None:
    """Bring the schema to `revision` inside the caller's transaction (a restore's)."""
    command.upgrade(alembic_config(connection), revision)
