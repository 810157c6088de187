"""Admin user management: list, create, disable/enable, change role, clear a login lockout
(org-scoped)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from streamspace.control_plane.api.deps import Admin, Ctx, end_logins
from streamspace.control_plane.api.schemas import UserCreate, UserRead, UserUpdate
from streamspace.control_plane.auth.throttle import user_key
from streamspace.control_plane.db.records import UserRecord
from streamspace.control_plane.services import audit, users
from streamspace.errors import Conflict, NotFound

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("", response_model=list[UserRead])
async def list_users(admin: Admin, ctx: Ctx) -> list[UserRead]:
    async with ctx.db() as db:
        rows = await db.scalars(
            select(UserRecord)
            .where(UserRecord.org_id == admin.org_id)
            .order_by(UserRecord.username)
        )
        return [UserRead.model_validate(u) for u in rows.all()]


@router.post("", response_model=UserRead, status_code=201)
async def create_user(body: UserCreate, admin: Admin, ctx: Ctx) -> UserRead:
    user = await users.create_user(
        ctx.db, username=body.username, password=body.password, role=body.role, org_id=admin.org_id
    )
    return UserRead.model_validate(user)


@router.patch("/{user_id}", response_model=UserRead)
async def update_user(user_id: str, body: UserUpdate, admin: Admin, ctx: Ctx) -> UserRead:
    async with ctx.db.begin() as db:
        user = await db.get(UserRecord, user_id)
        if user is None or user.org_id != admin.org_id:
            raise NotFound("user not found")
        if user.id == admin.user_id and (body.disabled or body.role == "user"):
            raise Conflict("you cannot disable or demote yourself", code="self_lockout")
        if body.disabled is not None:
            user.disabled = body.disabled
        if body.role is not None:
            user.role = body.role
    if user.disabled:
        await end_logins(ctx, user_id=user.id, reason="your account was disabled")
    elif body.role is not None:
        await ctx.login_store.refresh_user(user_id=user.id)
        # open sockets keep the role they were opened with: they reconnect with the new one
        await ctx.events.refresh_user(user_id=user.id, reason="your role changed")
    return UserRead.model_validate(user)


@router.delete("/{user_id}/lockout", status_code=204, response_class=Response, response_model=None)
async def clear_lockout(user_id: str, admin: Admin, ctx: Ctx) -> None:
    """Give the user their whole failed-login budget back at once (on every replica with Redis;
    without it, on this replica). Their client address's budget is left alone."""
    async with ctx.db() as db:
        user = await db.get(UserRecord, user_id)
    if user is None or user.org_id != admin.org_id:
        raise NotFound("user not found")
    await ctx.throttle.clear(keys=[user_key(user.username)])  # 503 if Redis cannot be reached
    await audit.record(
        ctx.db,
        org_id=user.org_id,
        actor=admin.username,
        action="user.lockout_cleared",
        detail={"user": user.username},
    )
