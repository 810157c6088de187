"""Shared fixtures: each DB-touching test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.docker import agent_names, session_image  # noqa: F401 - shared fixtures
from tests.support.kube import kube_api_double, kube_cluster  # noqa: F401 - shared fixtures
from tests.support.processes import RedisServer
from tests.support.sentinel import sentinel_group  # noqa: F401 - shared fixture
from tests.support.services import flush_redis, fresh_postgres

WORKER_REDIS = pytest.StashKey[RedisServer]()


def pytest_configure(config: pytest.Config) -> None:
    """In a parallel run (`make test`, pytest-xdist) each worker gets a Redis of its own, since
    tests empty the shared one; PostgreSQL needs nothing, as each test makes its own database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get("STREAMSPACE_TEST_REDIS_URL"):
        log_dir = Path(tempfile.mkdtemp(prefix=f"streamspace-test-redis-{worker}-"))
        server = RedisServer(log_dir=log_dir).start()
        config.stash[WORKER_REDIS] = server
        os.environ["STREAMSPACE_TEST_REDIS_URL"] = f"redis://127.0.0.1:{server.port}"


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(WORKER_REDIS, None)
    if server is not None:
        server.kill()
        shutil.rmtree(server.log_path.parent, ignore_errors=True)


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
