"""Login, logout, your own password and the current user. Each login attempt (and each check
of a current password) first takes a slot of its username's and its client address's budgets
(auth/throttle.py), and only then has its password verified."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from streamspace.control_plane.api.deps import Ctx, Login, User, end_logins
from streamspace.control_plane.api.mfa import challenge_response, issue_login
from streamspace.control_plane.api.mfa_schemas import MfaRequired
from streamspace.control_plane.api.schemas import (
    LoginRequest,
    PasswordChange,
    TokenResponse,
    UserRead,
)
from streamspace.control_plane.api.sso import directory_login
from streamspace.control_plane.auth.throttle import address_key, user_key
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.db.records import UserRecord
from streamspace.control_plane.services import audit, mfa, users
from streamspace.errors import Conflict, PermissionDenied, RateLimited, Unauthenticated

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
log = logging.getLogger(__name__)


async def _checked_login(
    ctx: AppContext, *, body: LoginRequest, address: str, clear_failures: bool = True
) -> UserRecord:
    """The user whose password this is, if both budgets have a slot for the attempt. A failure
    is counted against both; a success clears the username's failures (not the address's: one
    valid account must not buy unlimited guesses at the others)."""
    keys = [user_key(body.username), address_key(address)]
    wait = await ctx.throttle.reserve(keys=keys)
    if wait:
        log.info("login refused for %r from %s: retry in %d s", body.username, address, wait)
        raise RateLimited(f"too many login attempts; try again in {wait} s", retry_after=wait)
    try:
        user = await _authenticate(ctx, body=body)
    except BaseException:
        await ctx.throttle.settle(keys=keys, failed=False)  # the database failed, or the client
        raise
    await ctx.throttle.settle(keys=keys, failed=user is None)
    if user is None:
        log.info("login failed for %r from %s", body.username, address)
        raise Unauthenticated("invalid username or password", code="invalid_credentials")
    if clear_failures:
        await ctx.throttle.reset(keys=keys[:1])
    return user


async def _authenticate(ctx: AppContext, *, body: LoginRequest) -> UserRecord | None:
    """A local user's password here; any other name's at the LDAP directory, if there is one
    (a local user keeps their local password: the directory is never asked about them)."""
    user = await users.authenticate(
        ctx.db, username=body.username, password=body.password, verify=ctx.verify_password
    )
    if user is not None or ctx.ldap is None:
        return user
    if await users.auth_source(ctx.db, username=body.username) not in (None, "ldap"):
        return None
    return await directory_login(ctx, username=body.username, password=body.password)


@router.post(
    "/login",
    response_model=TokenResponse,
    responses={
        401: {
            "model": MfaRequired,
            "description": "Wrong username or password (invalid_credentials); or the password"
            " was right and a second step is needed (mfa_required, mfa_enrolment_required):"
            " send the challenge to POST /api/v1/auth/login/mfa",
        },
        429: {"description": "Too many login attempts; Retry-After says when to try again"},
    },
)
async def login(body: LoginRequest, request: Request, ctx: Ctx) -> TokenResponse | JSONResponse:
    address = _client_address(request)
    if "x-forwarded-for" in request.headers and not ctx.settings.trusted_proxies:
        _warn_untrusted_proxy(address)
    # a right password alone does not clear the username's failures of a user with a
    # second factor: only the second step does, so wrong codes add up across logins
    try:
        user = await _checked_login(ctx, body=body, address=address, clear_failures=False)
    except Unauthenticated as exc:
        await audit.record(
            ctx.db,
            org_id=await users.org_of(ctx.db, username=body.username),
            actor=body.username,
            action="auth.login_failed",
            detail={"reason": exc.code, "method": await _method(ctx, body.username)},
        )
        raise
    step = await mfa.login_step(ctx.db, user=user)
    if step != "none":
        return challenge_response(ctx, user=user, enrol=step == "enrol")
    await ctx.throttle.reset(keys=[user_key(body.username)])
    token, ttl = await issue_login(ctx, user=user, address=address)
    return TokenResponse(access_token=token, expires_in=ttl)


@router.post("/logout", status_code=204, response_class=Response, response_model=None)
async def logout(principal: Login, ctx: Ctx) -> None:
    await end_logins(
        ctx, user_id=principal.user_id, login_id=principal.token_id, reason="you logged out"
    )
    await audit.record(
        ctx.db,
        org_id=principal.org_id,
        actor=principal.username,
        action="auth.logout",
        target=principal.user_id,
    )


@router.post(
    "/password",
    status_code=204,
    response_class=Response,
    response_model=None,
    responses={429: {"description": "Too many wrong passwords; Retry-After says when"}},
)
async def change_password(
    body: PasswordChange, principal: Login, request: Request, ctx: Ctx
) -> None:
    """Change your own password. The current one is checked like a login (the same budgets:
    a stolen token cannot guess it); every other login of yours ends, and the sockets opened
    under them close on every replica. This login stays."""
    address = _client_address(request)
    source = await users.auth_source(ctx.db, username=principal.username)
    if source != "local":
        raise Conflict(
            f"your password is managed by your identity provider ({source}), not here",
            code="password_external",
        )
    check = LoginRequest(username=principal.username, password=body.current_password)
    try:
        await _checked_login(ctx, body=check, address=address)
    except Unauthenticated:
        # 403, not 401: the login itself is fine, and a 401 would sign the UI out
        raise PermissionDenied(
            "the current password is wrong", code="wrong_current_password"
        ) from None
    await users.set_password(ctx.db, user_id=principal.user_id, password=body.new_password)
    await end_logins(
        ctx,
        user_id=principal.user_id,
        keep=principal.token_id,
        reason="your password was changed",
    )
    await audit.record(
        ctx.db,
        org_id=principal.org_id,
        actor=principal.username,
        action="auth.password_changed",
        target=principal.user_id,
        detail={"address": address},
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
        platform_admin=principal.is_platform_admin,
    )


async def _method(ctx: AppContext, username: str) -> str:
    """How `username` signs in, for a failed login's audit event: their own source, or for an
    unknown name the directory when there is one (it was asked), else a local password."""
    source = await users.auth_source(ctx.db, username=username)
    return source or ("ldap" if ctx.ldap is not None else "local")


def _client_address(request: Request) -> str:
    """The peer, or the client a TRUSTED_PROXIES proxy forwarded for (app.py)."""
    return request.client.host if request.client else "unknown"


_warned: set[str] = set()


def _warn_untrusted_proxy(peer: str) -> None:
    """Once per peer: a proxy forwards for its clients but is not trusted, so every client
    behind it shares the proxy's login budget (an upgrade from before TRUSTED_PROXIES)."""
    if peer in _warned or len(_warned) > 100:
        return
    _warned.add(peer)
    log.warning(
        "a login from %s carried X-Forwarded-For, ignored: TRUSTED_PROXIES is empty, so every "
        "client behind that proxy shares its login budget; list the proxy in TRUSTED_PROXIES",
        peer,
    )
