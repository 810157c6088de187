"""Health, readiness, metrics, OpenAPI, and clear 4xx errors for bad requests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import get_args

import httpx
import pytest
from fastapi import FastAPI

from streamspace.control_plane.services.states import TRANSITIONS, SessionState
from tests.support.app import login, running_app


@pytest.fixture
async def app_client(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(database_url=database_url, pod_name="api-7") as pair:
        yield pair


async def test_the_installation_id_is_generated_once_per_database(
    database_url: str, tmp_path: Path
) -> None:
    async def installation(url: str) -> str:
        async with running_app(database_url=url) as (_, client):
            return str((await client.get("/health")).json()["installation_id"])

    first = await installation(database_url)
    assert await installation(database_url) == first  # a restart keeps it
    assert await installation(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}") != first


async def test_health_ready_metrics(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = app_client
    health = (await client.get("/health")).json()
    assert health["status"] == "ok" and health["pod_name"] == "api-7" and health["version"]
    assert re.fullmatch(r"[0-9a-f]{32}", health["installation_id"])
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    await client.get("/api/v1/templates", headers=await login(client))
    text = (await client.get("/api/v1/metrics")).text
    for name in (
        "streamspace_agents_connected ",
        "streamspace_commands_dispatched_total",
        "streamspace_commands_failed_total",
        "streamspace_http_request_duration_seconds",
        "streamspace_session_starts_total 0.0",
        "streamspace_session_start_failures_total 0.0",
        "streamspace_database_up 1.0",
        'streamspace_viewers{path="local"} 0.0',
    ):
        assert name in text, name
    assert 'route="/api/v1/templates"' in text
    # Single pod: no Redis, so no sample that an alert could read as "lost Redis".
    assert "streamspace_redis_connected{" not in text


async def test_openapi_and_docs(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = app_client
    spec = (await client.get("/api/openapi.json")).json()
    assert "/api/v1/sessions" in spec["paths"] and "/api/v1/auth/login" in spec["paths"]
    assert (await client.get("/api/docs")).status_code == 200


async def test_openapi_names_every_session_state_and_role(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    # The UI's TypeScript types are generated from this spec: without the enums its session
    # states and roles would be plain strings again.
    _, client = app_client
    schemas = (await client.get("/api/openapi.json")).json()["components"]["schemas"]
    states = schemas["SessionRead"]["properties"]["state"]["enum"]
    assert states == list(get_args(SessionState)) and set(states) == set(TRANSITIONS)
    assert schemas["UserRead"]["properties"]["role"]["enum"] == ["admin", "user"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        (
            "POST",
            "/api/v1/auth/login",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        ("POST", "/api/v1/auth/login", {"json": {"username": "x"}}, 422, "invalid_request"),
        (
            "POST",
            "/api/v1/auth/login",
            {"json": {"username": "x", "password": "y", "extra": 1}},
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            {"content": b"x" * (2 << 20), "headers": {"content-type": "application/json"}},
            413,
            "payload_too_large",
        ),
        ("GET", "/api/v1/nothing-here", {}, 404, "not_found"),
        ("PUT", "/health", {}, 405, "method_not_allowed"),
    ],
)
async def test_bad_requests_get_clear_errors(
    app_client: tuple[FastAPI, httpx.AsyncClient],
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    code: str,
) -> None:
    _, client = app_client
    r = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


async def test_ready_reports_a_dead_redis_as_degraded_not_unready(database_url: str) -> None:
    async with running_app(
        database_url=database_url, cache_enabled=True, redis_host="127.0.0.1", redis_port=1
    ) as (_, client):
        r = await client.get("/ready")
        assert r.status_code == 200 and r.json()["status"] == "degraded"
        assert r.json()["checks"]["redis"].startswith("failed")
        assert r.json()["checks"]["database"] == "ok"
