"""Login, logout and the current user. Failed logins are throttled per username and address."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from streamspace.control_plane.api.deps import Ctx, User, end_logins
from streamspace.control_plane.api.schemas import LoginRequest, TokenResponse, UserRead
from streamspace.control_plane.db.records import AuditEventRecord
from streamspace.control_plane.services import users
from streamspace.errors import RateLimited, Unauthenticated

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
log = logging.getLogger(__name__)


@router.post("/login", response_model=TokenResponse)
async def login(body: LoginRequest, request: Request, ctx: Ctx) -> TokenResponse:
    address = request.client.host if request.client else "unknown"
    keys = [f"user:{body.username.lower()}", f"ip:{address}"]
    wait = await ctx.throttle.retry_after(keys=keys)
    if wait:
        raise RateLimited(f"too many failed logins; try again in {wait} s", retry_after=wait)
    user = await users.authenticate(ctx.db, username=body.username, password=body.password)
    if user is None:
        await ctx.throttle.record_failure(keys=keys)
        log.info("login failed for %r from %s", body.username, address)
        raise Unauthenticated("invalid username or password", code="invalid_credentials")
    await ctx.throttle.reset(keys=keys[:1])
    ttl = ctx.settings.access_token_ttl
    token, claims = ctx.tokens.issue(subject=user.id, purpose="login", ttl=ttl)
    await ctx.login_store.create(
        token_id=claims.token_id, user_id=user.id, expires_at=claims.expires_at
    )
    async with ctx.db.begin() as db:
        db.add(
            AuditEventRecord(
                org_id=user.org_id,
                actor=user.username,
                action="auth.login",
                detail={"address": address},
            )
        )
    return TokenResponse(access_token=token, expires_in=int(ttl))


@router.post("/logout", status_code=204, response_class=Response, response_model=None)
async def logout(principal: User, ctx: Ctx) -> None:
    await end_logins(
        ctx, user_id=principal.user_id, login_id=principal.token_id, reason="you logged out"
    )


@router.get("/me", response_model=UserRead)
async def me(principal: User) -> UserRead:
    # The login check just read the user (enabled, role): no second query.
    return UserRead(
        id=principal.user_id,
        username=principal.username,
        role=principal.role,
        org_id=principal.org_id,
        disabled=False,
    )
