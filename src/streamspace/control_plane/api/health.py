"""Liveness (/health), readiness (/ready) and Prometheus metrics (/api/v1/metrics)."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import text

from streamspace import __version__
from streamspace.control_plane.api.deps import Ctx
from streamspace.control_plane.api.schemas import Health, Ready
from streamspace.errors import Unauthenticated

router = APIRouter(tags=["health"])
_scraper = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="STREAMSPACE_METRICS_TOKEN, when the control plane sets one",
)


@router.get("/health", response_model=Health)
async def health(ctx: Ctx) -> Health:
    return Health(
        status="ok",
        pod_name=ctx.settings.pod_name,
        version=__version__,
        installation_id=ctx.installation_id,
    )


async def _check_db(ctx: Ctx) -> str:
    try:
        async with asyncio.timeout(2), ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"[:200]


async def _check_redis(ctx: Ctx) -> str:
    if not await ctx.hub_backend.ping():
        return "failed: AgentHub Redis (DB 1) does not answer"
    if ctx.cache_redis is not None:
        try:
            async with asyncio.timeout(2):
                await ctx.cache_redis.ping()
        except Exception as exc:
            return f"failed: Redis cache (DB 0): {exc}"[:200]
    return "ok"


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
async def ready(ctx: Ctx) -> Response:
    """200 while this replica can serve: "ok", or "degraded" when Redis is down (it serves its
    own agents in single-pod mode and checks logins against the database, as the guide
    says). 503 "unavailable" only when it cannot: no database, or its AgentHub stopped."""
    checks = {"database": await _check_db(ctx)}
    if ctx.settings.redis_enabled:
        checks["redis"] = await _check_redis(ctx)
    checks["hub"] = "ok" if ctx.hub.running else "failed: AgentHub not running"
    essential = checks["database"] == "ok" and checks["hub"] == "ok"
    status = (
        "unavailable"
        if not essential
        else "ok"
        if checks.get("redis", "ok") == "ok"
        else "degraded"
    )
    body = Ready(status=status, pod_name=ctx.settings.pod_name, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if essential else 503)


def _check_scraper(ctx: Ctx, credentials: HTTPAuthorizationCredentials | None) -> None:
    """With STREAMSPACE_METRICS_TOKEN set, a scrape must carry it as its bearer token."""
    expected = ctx.settings.metrics_token
    if expected is None:
        return
    if credentials is None:
        raise Unauthenticated(
            "missing bearer token (STREAMSPACE_METRICS_TOKEN)", code="missing_token"
        )
    given = credentials.credentials.encode()
    if not hmac.compare_digest(given, expected.get_secret_value().encode()):
        raise Unauthenticated("wrong metrics token", code="invalid_token")


@router.get(
    "/api/v1/metrics",
    response_class=Response,
    responses={
        401: {"description": "STREAMSPACE_METRICS_TOKEN is set and is not the bearer token"}
    },
)
async def metrics(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scraper)]
) -> Response:
    """Prometheus metrics of this replica. Open, unless STREAMSPACE_METRICS_TOKEN is set: then
    only a scrape carrying that token as its bearer token (the login tokens do not count)."""
    _check_scraper(ctx, credentials)
    await ctx.metrics.refresh(
        sessions=ctx.db,
        liveness=ctx.agent_liveness,
        local_agents=ctx.hub.local_count,
        redis_connected=ctx.hub.bus.multi_pod if ctx.settings.agenthub_redis_enabled else None,
    )
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
