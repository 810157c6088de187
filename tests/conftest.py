"""Shared fixtures: each DB-touching test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.docker import session_image  # noqa: F401 - shared fixture
from tests.support.kube import kube_api_double, kube_cluster  # noqa: F401 - shared fixtures
from tests.support.sentinel import sentinel_group  # noqa: F401 - shared fixture
from tests.support.services import flush_redis, fresh_postgres


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'streamspace.db'}"
        return
    async with fresh_postgres() as url:
        yield url


@pytest.fixture
async def clean_redis() -> str:
    """The real Redis, emptied (DB 0 and 1) before the test."""
    return await flush_redis()
