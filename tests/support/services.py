"""Where the real test services are (started by scripts/test-services.sh), and fresh
databases on them. A test needing a missing service skips locally and fails under `make test`.
With STREAMSPACE_TEST_VIA_PGBOUNCER=1 (`make test-pgbouncer`) the app reaches its fresh database
through the PgBouncer in front of the test server, as a production deployment would."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.processes import free_port

PG_URL = os.environ.get("STREAMSPACE_TEST_PG_URL", "")
PGBOUNCER_URL = os.environ.get("STREAMSPACE_TEST_PGBOUNCER_URL", "")
VIA_PGBOUNCER = os.environ.get("STREAMSPACE_TEST_VIA_PGBOUNCER") == "1"
REQUIRE = os.environ.get("STREAMSPACE_TEST_REQUIRE_SERVICES") == "1"


def need(value: str, what: str) -> str:
    if not value:
        message = f"{what} is not configured (run via `make test`)"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return value


def _on_server(server_url: str, database: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + database


def direct_url(url: str) -> str:
    """The test server's own URL for `url`'s database, bypassing PgBouncer: for what a test
    does to the server itself (create, drop, terminate connections)."""
    if PGBOUNCER_URL and url.startswith(PGBOUNCER_URL.rsplit("/", 1)[0] + "/"):
        return _on_server(need(PG_URL, "PostgreSQL"), url.rsplit("/", 1)[1])
    return url


def pgbouncer_url(url: str) -> str:
    """`url`'s database on the test server, reached through PgBouncer (transaction mode)."""
    return _on_server(need(PGBOUNCER_URL, "PgBouncer"), url.rsplit("/", 1)[1])


@asynccontextmanager
async def fresh_postgres(server_url: str | None = None) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on `server_url` (default: the test server, reached
    through PgBouncer when the run asks for it); dropped afterwards."""
    base = server_url or need(PG_URL, "PostgreSQL")
    via = need(PGBOUNCER_URL, "PgBouncer") if VIA_PGBOUNCER and server_url is None else base
    name = f"ss_test_{uuid.uuid4().hex[:12]}"
    # pinged before use: the server may have been restarted under the test meanwhile
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield _on_server(via, name)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def redis_url() -> str:
    """The test Redis: read when asked, since a parallel run's worker points the variable at a
    Redis of its own after this module is imported (tests/conftest.py)."""
    return need(os.environ.get("STREAMSPACE_TEST_REDIS_URL", ""), "Redis")


def redis_host_port() -> tuple[str, int]:
    parsed = urlparse(redis_url())
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


async def flush_redis() -> str:
    """Empty the real Redis (DB 0 and 1) and return its URL."""
    url = redis_url()
    for db in (0, 1):
        client = aioredis.Redis.from_url(f"{url}/{db}")
        await client.flushdb()
        await client.aclose()
    return url


class PrivatePostgres:
    """A PostgreSQL server of a test's own, to stop and start under a running app (the shared
    one serves every other test). Same binaries as scripts/test-services.sh."""

    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port = data, port
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        command = " ".join([f"{_pg_bin()}/pg_ctl", "-D", str(self.data), *args])
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], check=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-l", str(self.data / "pg.log"), "-w", "-o", f"'{options}'", "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")  # as a crash or a failover would


def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        need("", "PostgreSQL server binaries")
    return str(Path(found[-1]).parent)


@asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    need(PG_URL, "PostgreSQL")  # the services are installed
    root = Path(tempfile.mkdtemp(prefix="ss-pg-", dir="/tmp"))
    shutil.chown(root, "postgres")
    data = root / "data"
    init = f"{_pg_bin()}/initdb -D {data} -U postgres -A trust --no-sync -E UTF8"
    command = ["su", "postgres", "-s", "/bin/sh", "-c", init]
    await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True)
    server = PrivatePostgres(data, free_port())
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
