"""Where the real test services are (started by scripts/test-services.sh), and fresh
databases on them. A test needing a missing service skips locally and fails under `make test`."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlparse

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

PG_URL = os.environ.get("STREAMSPACE_TEST_PG_URL", "")
REDIS_URL = os.environ.get("STREAMSPACE_TEST_REDIS_URL", "")
REQUIRE = os.environ.get("STREAMSPACE_TEST_REQUIRE_SERVICES") == "1"


def need(value: str, what: str) -> str:
    if not value:
        message = f"{what} is not configured (run via `make test`)"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return value


@asynccontextmanager
async def fresh_postgres(server_url: str | None = None) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on `server_url` (default: the test server); dropped
    afterwards."""
    base = server_url or need(PG_URL, "PostgreSQL")
    name = f"ss_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def redis_host_port() -> tuple[str, int]:
    parsed = urlparse(need(REDIS_URL, "Redis"))
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


async def flush_redis() -> str:
    """Empty the real Redis (DB 0 and 1) and return its URL."""
    url = need(REDIS_URL, "Redis")
    for db in (0, 1):
        client = aioredis.Redis.from_url(f"{url}/{db}")
        await client.flushdb()
        await client.aclose()
    return url
