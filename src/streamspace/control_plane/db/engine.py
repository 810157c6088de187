"""Database engine and session factory, with the guide's pool settings applied.

DB_MAX_OPEN_CONNS caps connections, DB_MAX_IDLE_CONNS is the pool kept open,
DB_CONN_MAX_LIFETIME recycles old connections. SQLite gets WAL and a busy timeout, and its file
is private to the service's user (db/files.py).
PostgreSQL connections that sat idle are checked before use, and single-statement reads run
outside a transaction (`reads`). DB_PGBOUNCER makes statements safe behind a transaction pooler.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.db.files import prepare_sqlite


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _skip_idle_rollbacks(engine: AsyncEngine) -> None:
    """aiosqlite runs every call on its own thread, and a read request paid two such hops for
    rollbacks of nothing (closing the session, then the pool resetting the connection). A
    SELECT opens no transaction in sqlite3, so roll back only when one is open."""
    dialect = engine.sync_engine.dialect
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            rollback(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def create_engine(settings: ControlPlaneSettings) -> AsyncEngine:
    """Build the async engine for DATABASE_URL (SQLite file in the data dir by default)."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            prepare_sqlite(Path(url.database))
        engine = create_async_engine(url, pool_size=5, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _skip_idle_rollbacks(engine)
        return engine
    idle = max(settings.db_max_idle_conns, 1)
    engine = create_async_engine(
        url,
        pool_size=idle,
        max_overflow=max(settings.db_max_open_conns - idle, 0),
        pool_recycle=int(settings.db_conn_max_lifetime),
        pool_timeout=10,
        connect_args=POOLER_SAFE_STATEMENTS if settings.db_pgbouncer else {},
    )
    _ping_when_idle(engine)
    _refusals_are_database_errors(engine)
    return engine


def _unnamed() -> str:
    return ""


# Behind PgBouncer in transaction mode a client holds a server connection only for one
# transaction, while asyncpg names its prepared statements per client connection and caches
# them: the next use lands on another server connection ("prepared statement ... does not
# exist"). SQLAlchemy's documented remedy, unique names, leaves every statement prepared on the
# server connection it happened to use, never deallocated there (PgBouncer runs no DISCARD in
# transaction mode). Unnamed statements replace one another instead, and with its cache off
# asyncpg sends the Parse again with the Bind, Execute and Sync, so a statement always runs on
# the server connection that parsed it, in autocommit reads too. The cost: a statement is
# parsed on every execution, so it is an opt-in.
POOLER_SAFE_STATEMENTS: dict[str, Any] = {
    "statement_cache_size": 0,  # asyncpg's own cache (its introspection, executemany)
    "prepared_statement_cache_size": 0,  # SQLAlchemy's cache of prepared statements
    "prepared_statement_name_func": _unnamed,
}


def _refusals_are_database_errors(engine: AsyncEngine) -> None:
    """asyncpg raises a plain OSError (connection refused, no route, DNS) or TimeoutError when
    it cannot reach the server, which SQLAlchemy passes through unwrapped: a request during a
    PostgreSQL outage was a 500. Raised as the driver's OperationalError instead, it is the
    503 `database_unavailable` every other database outage gives."""
    dialect = engine.sync_engine.dialect
    connect = dialect.connect

    def connect_or_explain(*args: Any, **kwargs: Any) -> Any:
        try:
            return connect(*args, **kwargs)
        except (OSError, TimeoutError) as exc:
            message = f"cannot reach PostgreSQL: {exc}"
            raise dialect.loaded_dbapi.OperationalError(message) from exc

    dialect.connect = connect_or_explain  # type: ignore[method-assign]


# A connection given back to the pool less than this long ago was working then.
PING_AFTER_IDLE = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling, paid only by connections that sat idle.

    SQLAlchemy's `pool_pre_ping` pings on every checkout, and on asyncpg a ping is three round
    trips (BEGIN, an empty query, ROLLBACK): more than the one SELECT of most requests. Under
    load a connection comes back within milliseconds, so only one idle for PING_AFTER_IDLE or
    longer is pinged; a dead one (server restarted, connection killed) is dropped and the pool
    opens another, as with `pool_pre_ping`."""
    sync = engine.sync_engine

    def mark_idle(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE:
            return
        try:
            alive = sync.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("connection failed its ping")

    event.listen(sync, "connect", mark_idle)
    event.listen(sync, "checkin", mark_idle)
    event.listen(sync, "checkout", check)


# PostgreSQL's answers that mean "not now" rather than "wrong": connection exceptions (08...),
# too many connections, and the server shutting down or still starting up, which asyncpg
# raises as its own errors and SQLAlchemy passes on as a plain DBAPIError.
_NOT_NOW = ("08", "53300", "57P01", "57P02", "57P03")


def unavailable(exc: BaseException) -> bool:
    """The database out rather than a bug: unreachable (OperationalError), a connection lost
    mid-statement (the server restarted, a proxy cut it), the server refusing connections
    while it starts up or shuts down, or the pool exhausted. The same request, or message,
    may succeed once it answers again."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return exc.connection_invalidated or str(sqlstate or "").startswith(_NOT_NOW)


def reads(engine: AsyncEngine) -> AsyncEngine:
    """The engine for single-statement reads (the hot GETs and the login check).

    On PostgreSQL it runs in autocommit: a read is one round trip instead of BEGIN, SELECT,
    ROLLBACK, and one statement sees one snapshot anyway. SQLite begins no transaction for a
    SELECT, and switching its isolation level would cost two thread hops, so it is the engine
    itself there."""
    if is_sqlite(engine):
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


class RecordSession(Session):
    """The control plane's ORM sessions: a class of their own, so its flush listeners (the
    webhook outbox, services/webhooks.py) see these sessions and no others in the process."""


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=RecordSession)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_path(settings: ControlPlaneSettings) -> Path | None:
    """The SQLite file DATABASE_URL (or the data dir) names; None on PostgreSQL or in memory."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def explicit_transactions(engine: AsyncEngine) -> AsyncEngine:
    """Make `engine.begin()` one real transaction on SQLite, as it is on PostgreSQL.

    pysqlite opens a transaction only before a write: a backup's SELECTs would each see their
    own snapshot, and a restore's CREATE TABLEs would commit one by one. With the driver's own
    handling off and BEGIN sent by SQLAlchemy, a backup reads one snapshot (WAL lets writers
    carry on meanwhile) and a failed restore leaves nothing behind. For the engines of
    `streamspace backup` and `restore` only: the app's hot paths keep the driver's behaviour."""
    sync = engine.sync_engine
    if is_sqlite(engine) and not event.contains(sync, "begin", _begin):
        event.listen(sync, "connect", _no_driver_transactions)
        event.listen(sync, "begin", _begin)
    return engine


def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None


def _begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")
