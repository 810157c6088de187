"""Quotas: a user's limits and usage (their own and their org's); an org admin sets their
users' limits, a platform admin sets orgs'. Enforcement is the session create's
(services/quotas.py `refusal`)."""

from __future__ import annotations

from fastapi import APIRouter

from streamspace.control_plane.api.deps import Admin, Ctx, PlatformAdmin, User
from streamspace.control_plane.api.schemas import (
    QuotaAmounts,
    QuotaRead,
    QuotaScope,
    QuotaUpdate,
    QuotaUsage,
)
from streamspace.control_plane.services import quotas, users

router = APIRouter(prefix="/api/v1", tags=["quotas"])


def _scope(report: quotas.ScopeReport) -> QuotaScope:
    def amounts(value: quotas.Amounts) -> QuotaAmounts:
        return QuotaAmounts(
            sessions=value.sessions,
            cpu_millicores=value.cpu_millicores,
            memory_mb=value.memory_mb,
        )

    return QuotaScope(
        limits=amounts(report.limits),
        own=amounts(report.own),
        usage=QuotaUsage(
            sessions=report.usage.sessions or 0,
            cpu_millicores=report.usage.cpu_millicores or 0,
            memory_mb=report.usage.memory_mb or 0,
        ),
    )


def _read(report: quotas.QuotaReport) -> QuotaRead:
    return QuotaRead(user=_scope(report.user), org=_scope(report.org))


def _limits(body: QuotaUpdate) -> quotas.Amounts:
    return quotas.Amounts(
        sessions=body.sessions, cpu_millicores=body.cpu_millicores, memory_mb=body.memory_mb
    )


@router.get("/quota", response_model=QuotaRead)
async def my_quota(principal: User, ctx: Ctx) -> QuotaRead:
    """The caller's limits and usage, and their org's (a create is refused when either
    would be exceeded)."""
    policy = ctx.session_service.quota
    return _read(await quotas.report(ctx.db, policy=policy, user_id=principal.user_id))


@router.get("/users/{user_id}/quota", response_model=QuotaRead)
async def user_quota(user_id: str, admin: Admin, ctx: Ctx) -> QuotaRead:
    async with ctx.db() as db:
        await users.managed_user(db, actor=admin, user_id=user_id)
    policy = ctx.session_service.quota
    return _read(await quotas.report(ctx.db, policy=policy, user_id=user_id))


@router.put("/users/{user_id}/quota", response_model=QuotaRead)
async def set_user_quota(user_id: str, body: QuotaUpdate, admin: Admin, ctx: Ctx) -> QuotaRead:
    """Set a user of the admin's org's own limits (audited as quota.updated). Sessions over a
    lowered limit keep running; new creates are refused until usage is under it."""
    await quotas.set_user_limits(ctx.db, actor=admin, user_id=user_id, limits=_limits(body))
    policy = ctx.session_service.quota
    return _read(await quotas.report(ctx.db, policy=policy, user_id=user_id))


@router.get("/orgs/{org_id}/quota", response_model=QuotaScope)
async def org_quota(org_id: str, admin: PlatformAdmin, ctx: Ctx) -> QuotaScope:
    policy = ctx.session_service.quota
    return _scope(await quotas.org_report(ctx.db, policy=policy, org_id=org_id))


@router.put("/orgs/{org_id}/quota", response_model=QuotaScope)
async def set_org_quota(
    org_id: str, body: QuotaUpdate, admin: PlatformAdmin, ctx: Ctx
) -> QuotaScope:
    """Set an org's own limits, for all its users together (audited as quota.updated)."""
    await quotas.set_org_limits(ctx.db, actor=admin, org_id=org_id, limits=_limits(body))
    policy = ctx.session_service.quota
    return _scope(await quotas.org_report(ctx.db, policy=policy, org_id=org_id))
