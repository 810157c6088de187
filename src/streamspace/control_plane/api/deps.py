"""Request dependencies: the app context and the authenticated principal (a login token or a
personal API token); ending logins."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from streamspace.control_plane.auth.api_tokens import PREFIX as API_TOKEN_PREFIX
from streamspace.control_plane.auth.api_tokens import READ_SCOPE, is_api_token
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.context import AppContext
from streamspace.errors import PermissionDenied, Unauthenticated

_bearer = HTTPBearer(
    auto_error=False,
    description="Login token from POST /api/v1/auth/login, or a personal API token (sst_…)"
    " from POST /api/v1/tokens",
)
# what a read-only API token may do
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread
    # hop on every request just to read an attribute
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_context)]


async def principal_from_token(ctx: AppContext, token: str) -> Principal:
    """Check a login token: signature, expiry, server-side session, and the user still enabled;
    or a personal API token: its row (revoked, expired) and its user, read now."""
    if is_api_token(token):
        return await ctx.api_tokens.principal(token)
    claims = ctx.tokens.decode(token, purpose="login")
    return await ctx.login_store.principal(token_id=claims.token_id)


async def login_principal(ctx: AppContext, login_id: str) -> Principal:
    """Who a ticket or stream token speaks for, checked against its login now: refused once
    that login ended (logout, password change) or its user was disabled or removed."""
    if not login_id:
        raise Unauthenticated(
            "this token is bound to no login; request a new one", code="token_unbound"
        )
    if login_id.startswith(API_TOKEN_PREFIX):  # issued under a personal API token
        return await ctx.api_tokens.principal_by_id(login_id)
    return await ctx.login_store.principal(token_id=login_id)


async def credential_ended(ctx: AppContext, login_id: str) -> str | None:
    """Why a login or API token holding sockets can no longer be used, or None while it is
    live (EventHub.recheck_logins); a database outage raises."""
    try:
        await login_principal(ctx, login_id)
    except Unauthenticated as exc:
        return exc.message
    return None


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


async def authenticated_principal(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Whoever the bearer token is, whatever its scope: `Reader`, for the few POSTs that only
    read (the events socket's ticket)."""
    if credentials is None:
        raise Unauthenticated("missing bearer token", code="missing_token")
    return await principal_from_token(ctx, credentials.credentials)


async def current_principal(
    request: Request, principal: Annotated[Principal, Depends(authenticated_principal)]
) -> Principal:
    """The caller; a read-only API token only for reading methods."""
    if principal.scope == READ_SCOPE and request.method not in READ_METHODS:
        raise PermissionDenied(
            "this API token is read-only: it may only read (GET, HEAD)", code="token_read_only"
        )
    return principal


async def login_only(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """Refuse API tokens: what manages credentials (tokens, passwords, users, orgs) needs a
    login, so that a leaked token cannot make itself new ones or lock its owner out."""
    if principal.is_api_token:
        raise PermissionDenied(
            "API tokens cannot do this (manage tokens, passwords, users or orgs): log in",
            code="login_required",
        )
    return principal


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
Reader = Annotated[Principal, Depends(authenticated_principal)]
Login = Annotated[Principal, Depends(login_only)]
LoginOnly = Depends(login_only)  # for routes that take Admin: dependencies=[LoginOnly]
Admin = Annotated[Principal, Depends(admin_principal)]
PlatformAdmin = Annotated[Principal, Depends(platform_admin_principal)]
