"""Run a control-plane app in-process (lifespan included) with an httpx client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.app import create_app
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.db.records import AuditEventRecord

ADMIN_PASSWORD = "admin-pass-123"


@asynccontextmanager
async def running_app(
    *, database_url: str, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = ControlPlaneSettings(
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        pod_name=overrides.pop("pod_name", "test-pod"),
        **overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


def context(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


async def login(
    client: httpx.AsyncClient, username: str = "admin", password: str = ADMIN_PASSWORD
) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def make_user(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    username: str,
    password: str = "user-pass-123",
    role: str = "user",
) -> dict[str, str]:
    response = await client.post(
        "/api/v1/users",
        headers=admin,
        json={"username": username, "password": password, "role": role},
    )
    assert response.status_code == 201, response.text
    return await login(client, username, password)


async def audit_events(app: FastAPI, action: str) -> list[AuditEventRecord]:
    """The audit events of one action, oldest first."""
    async with context(app).db() as db:
        rows = await db.scalars(
            select(AuditEventRecord)
            .where(AuditEventRecord.action == action)
            .order_by(AuditEventRecord.id)
        )
        return list(rows.all())
