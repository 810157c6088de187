"""Request dependencies: the app context and the authenticated principal; ending logins."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.context import AppContext
from streamspace.errors import PermissionDenied, Unauthenticated

_bearer = HTTPBearer(auto_error=False, description="Login token from POST /api/v1/auth/login")


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread
    # hop on every request just to read an attribute
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_context)]


async def principal_from_token(ctx: AppContext, token: str) -> Principal:
    """Check a login token: signature, expiry, server-side session, and the user still enabled."""
    claims = ctx.tokens.decode(token, purpose="login")
    return await ctx.login_store.principal(token_id=claims.token_id)


async def login_principal(ctx: AppContext, login_id: str) -> Principal:
    """Who a ticket or stream token speaks for, checked against its login now: refused once
    that login ended (logout, password change) or its user was disabled or removed."""
    if not login_id:
        raise Unauthenticated(
            "this token is bound to no login; request a new one", code="token_unbound"
        )
    return await ctx.login_store.principal(token_id=login_id)


async def end_logins(
    ctx: AppContext,
    *,
    user_id: str,
    login_id: str | None = None,
    keep: str | None = None,
    reason: str,
) -> None:
    """End one login (`login_id`) or all of a user's but `keep`, and close the sockets
    opened under them on every replica (events, viewers) with 4401 and `reason`."""
    if login_id is None:
        await ctx.login_store.revoke_user(user_id=user_id, keep=keep)
    else:
        await ctx.login_store.revoke(token_id=login_id)
    await ctx.events.end_logins(user_id=user_id, login_id=login_id, reason=reason, keep=keep)


async def current_principal(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthenticated("missing bearer token", code="missing_token")
    return await principal_from_token(ctx, credentials.credentials)


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("admin role required")
    return principal


async def platform_admin_principal(
    principal: Annotated[Principal, Depends(admin_principal)],
) -> Principal:
    """Agents, replicas and orgs are the platform's, not an org's: an org's admin manages
    their own users, templates and sessions only."""
    if not principal.is_platform_admin:
        raise PermissionDenied(
            "platform admin required: agents, replicas and orgs belong to the platform",
            code="platform_admin_required",
        )
    return principal


User = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]
PlatformAdmin = Annotated[Principal, Depends(platform_admin_principal)]
