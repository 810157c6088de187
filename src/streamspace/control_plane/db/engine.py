"""Database engine and session factory, with the guide's pool settings applied.

DB_MAX_OPEN_CONNS caps connections, DB_MAX_IDLE_CONNS is the pool kept open,
DB_CONN_MAX_LIFETIME recycles old connections. SQLite gets WAL and a busy timeout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from streamspace.config import ControlPlaneSettings


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(settings: ControlPlaneSettings) -> AsyncEngine:
    """Build the async engine for DATABASE_URL (SQLite file in the data dir by default)."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=5, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    idle = max(settings.db_max_idle_conns, 1)
    return create_async_engine(
        url,
        pool_size=idle,
        max_overflow=max(settings.db_max_open_conns - idle, 0),
        pool_recycle=int(settings.db_conn_max_lifetime),
        pool_pre_ping=True,
        pool_timeout=10,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
