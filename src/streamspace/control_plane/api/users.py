"""Admin user management, org-scoped: list, create, disable/enable, change role, make platform
admins (platform admins only), remove, clear a login lockout."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from streamspace.control_plane.api.deps import Admin, Ctx, LoginOnly, end_logins
from streamspace.control_plane.api.schemas import UserCreate, UserRead, UserRemoved, UserUpdate
from streamspace.control_plane.auth.throttle import user_key
from streamspace.control_plane.db.records import UserRecord
from streamspace.control_plane.services import api_tokens, audit, mfa_policy, users

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("", response_model=list[UserRead])
async def list_users(admin: Admin, ctx: Ctx) -> list[UserRead]:
    async with ctx.db() as db:
        rows = await db.scalars(
            select(UserRecord)
            .where(UserRecord.org_id == admin.org_id, UserRecord.removed_at.is_(None))
            .order_by(UserRecord.username)
        )
        found = rows.all()
    with_mfa = await mfa_policy.enabled_among(ctx.db, user_ids=(u.id for u in found))
    return [
        UserRead.model_validate(u).model_copy(update={"mfa_enabled": u.id in with_mfa})
        for u in found
    ]


@router.post("", response_model=UserRead, status_code=201, dependencies=[LoginOnly])
async def create_user(body: UserCreate, admin: Admin, ctx: Ctx) -> UserRead:
    users.check_grants(
        actor_is_platform_admin=admin.is_platform_admin,
        platform_admin=body.platform_admin or None,
    )
    user = await users.create_user(
        ctx.db,
        username=body.username,
        password=body.password,
        role=body.role,
        org_id=admin.org_id,
        platform_admin=body.platform_admin,
        actor=admin.username,
    )
    return UserRead.model_validate(user)


@router.patch("/{user_id}", response_model=UserRead, dependencies=[LoginOnly])
async def update_user(user_id: str, body: UserUpdate, admin: Admin, ctx: Ctx) -> UserRead:
    change = users.UserChange(
        disabled=body.disabled, role=body.role, platform_admin=body.platform_admin
    )
    user = await users.update_user(ctx.db, actor=admin, user_id=user_id, change=change)
    if user.disabled:
        await end_logins(ctx, user_id=user.id, reason="your account was disabled")
        await api_tokens.revoke_user_tokens(
            ctx.db, actor=admin.username, user_id=user.id, reason="account disabled"
        )
    elif body.role is not None or body.platform_admin is not None:
        await ctx.login_store.refresh_user(user_id=user.id)
        # open sockets keep the role they were opened with: they reconnect with the new one
        await ctx.events.refresh_user(user_id=user.id, reason="your role changed")
    return UserRead.model_validate(user)


@router.delete("/{user_id}", response_model=UserRemoved, dependencies=[LoginOnly])
async def remove_user(user_id: str, admin: Admin, ctx: Ctx) -> UserRemoved:
    """Remove a user: their logins end and their open sockets close on every replica, their
    sessions are terminated. The record stays (history) and the name stays taken, so nobody
    new is given their home; their home volumes stay on the agents until an operator deletes
    them."""
    user = await users.remove_user(ctx.db, actor=admin, user_id=user_id)
    await end_logins(ctx, user_id=user.id, reason="your account was removed")
    await api_tokens.revoke_user_tokens(
        ctx.db, actor=admin.username, user_id=user.id, reason="account removed"
    )
    kept = await ctx.session_service.terminate_all(principal=admin, user_id=user.id)
    return UserRemoved(id=user.id, username=user.username, sessions_not_terminated=list(kept))


@router.delete(
    "/{user_id}/lockout",
    status_code=204,
    response_class=Response,
    response_model=None,
    dependencies=[LoginOnly],
)
async def clear_lockout(user_id: str, admin: Admin, ctx: Ctx) -> None:
    """Give the user their whole failed-login budget back at once (on every replica with Redis;
    without it, on this replica). Their client address's budget is left alone."""
    async with ctx.db() as db:
        user = await users.managed_user(db, actor=admin, user_id=user_id)
    await ctx.throttle.clear(keys=[user_key(user.username)])  # 503 if Redis cannot be reached
    await audit.record(
        ctx.db,
        org_id=user.org_id,
        actor=admin.username,
        action="user.lockout_cleared",
        detail={"user": user.username},
    )
