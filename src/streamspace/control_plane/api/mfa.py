"""The TOTP second factor over HTTP: the login's second step, your own factor (enrol, disable,
recovery codes), an admin's reset and an org's "MFA required" flag. Every code or password
checked here first takes a slot of the username's and the address's login budgets
(auth/throttle.py), as a password at login does: a stolen password cannot buy guesses at the
code."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from streamspace.control_plane.api.deps import Admin, Ctx, Login, LoginOnly, User
from streamspace.control_plane.api.mfa_schemas import (
    MfaChallenge,
    MfaConfirm,
    MfaEnrolment,
    MfaLogin,
    MfaLoginEnrol,
    MfaLoginResponse,
    MfaProof,
    MfaRecoveryCodes,
    MfaRequired,
    MfaStatusRead,
    OrgMfa,
    OrgMfaRead,
)
from streamspace.control_plane.auth.throttle import address_key, user_key
from streamspace.control_plane.auth.tokens import TokenClaims
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.db.records import UserRecord
from streamspace.control_plane.services import audit, mfa, mfa_policy, users
from streamspace.errors import NotFound, PermissionDenied, RateLimited, Unauthenticated

router = APIRouter(tags=["mfa"])
log = logging.getLogger(__name__)

CHALLENGE = "mfa"  # the purpose of a second-step challenge token
T = TypeVar("T")
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many wrong codes or passwords; Retry-After says when"}
}


def client_address(request: Request) -> str:
    """The peer, or the client a TRUSTED_PROXIES proxy forwarded for (app.py)."""
    return request.client.host if request.client else "unknown"


async def throttled(
    ctx: AppContext, *, username: str, address: str, attempt: Callable[[], Awaitable[T | None]]
) -> T | None:
    """Run `attempt` (None: it failed) on a slot of both budgets, counting a failure against
    both; a success clears the username's failures."""
    keys = [user_key(username), address_key(address)]
    wait = await ctx.throttle.reserve(keys=keys)
    if wait:
        raise RateLimited(f"too many attempts; try again in {wait} s", retry_after=wait)
    try:
        result = await attempt()
    except BaseException:
        await ctx.throttle.settle(keys=keys, failed=False)
        raise
    await ctx.throttle.settle(keys=keys, failed=result is None)
    if result is not None:
        await ctx.throttle.reset(keys=keys[:1])
    return result


def challenge_response(ctx: AppContext, *, user: UserRecord, enrol: bool) -> JSONResponse:
    """Password accepted, a second step needed: 401 with a challenge token for it. The token
    is stateless (any replica checks it); it is spent by the first second step that succeeds
    (services/mfa.py) and expires after STREAMSPACE_MFA_CHALLENGE_TTL."""
    ttl = ctx.settings.mfa_challenge_ttl
    token, _ = ctx.tokens.issue(
        subject=user.id, purpose=CHALLENGE, ttl=ttl, usr=user.username, enrol=enrol, at=time.time()
    )
    if enrol:
        code, message = (
            "mfa_enrolment_required",
            "your org requires a second factor: enrol one to sign in (the web UI guides you;"
            " API: POST /api/v1/auth/login/mfa/enrolment, then /api/v1/auth/login/mfa)",
        )
    else:
        code, message = (
            "mfa_required",
            "a code from your authenticator app is required: send it with this challenge to"
            " POST /api/v1/auth/login/mfa (the web UI asks for it)",
        )
    body = MfaRequired.model_validate(
        {
            "error": {"code": code, "message": message},
            "mfa": MfaChallenge(challenge=token, expires_in=int(ttl), enrol=enrol),
        }
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


async def issue_login(
    ctx: AppContext, *, user: UserRecord, address: str, method: str | None = None
) -> tuple[str, int]:
    """A login token for `user`, its server-side session, and the audited login."""
    ttl = ctx.settings.access_token_ttl
    token, claims = ctx.tokens.issue(subject=user.id, purpose="login", ttl=ttl)
    await ctx.login_store.create(
        token_id=claims.token_id, user_id=user.id, expires_at=claims.expires_at
    )
    detail = {"address": address, "method": user.auth_source} | ({"mfa": method} if method else {})
    await audit.record(
        ctx.db, org_id=user.org_id, actor=user.username, action="auth.login", detail=detail
    )
    return token, int(ttl)


def _challenge(ctx: AppContext, token: str) -> TokenClaims:
    return ctx.tokens.decode(token, purpose=CHALLENGE)


@router.post(
    "/api/v1/auth/login/mfa",
    response_model=MfaLoginResponse,
    responses={**RATE_LIMITED, 401: {"description": "Wrong code, or the challenge is spent"}},
)
async def login_second_step(body: MfaLogin, request: Request, ctx: Ctx) -> MfaLoginResponse:
    """Finish a login that answered mfa_required (or mfa_enrolment_required, after the
    enrolment below) with a current code or an unused recovery code."""
    claims = _challenge(ctx, body.challenge)
    username, address = str(claims.extra.get("usr", "")), client_address(request)

    async def attempt() -> mfa.SecondStep | None:
        return await mfa.second_step(
            ctx.db,
            cipher=ctx.mfa_cipher,
            user_id=claims.subject,
            issued_at=float(claims.extra.get("at", 0)),
            enrol=bool(claims.extra.get("enrol")),
            code=body.code,
            recovery_code=body.recovery_code,
            now=time.time(),
        )

    step = await throttled(ctx, username=username, address=address, attempt=attempt)
    async with ctx.db() as db:
        user = await db.get(UserRecord, claims.subject)
    if user is None:
        raise Unauthenticated("invalid username or password", code="invalid_credentials")
    if step is None:
        reason = "wrong_mfa_code" if body.code else "wrong_recovery_code"
        await audit.record(
            ctx.db,
            org_id=user.org_id,
            actor=user.username,
            action="auth.login_failed",
            detail={"address": address, "reason": reason},
        )
        log.info("second step failed for %r from %s", username, address)
        raise Unauthenticated("wrong or already used code", code="invalid_mfa_code")
    token, ttl = await issue_login(ctx, user=user, address=address, method=step.method)
    return MfaLoginResponse(access_token=token, expires_in=ttl, recovery_codes=step.recovery_codes)


@router.post("/api/v1/auth/login/mfa/enrolment", response_model=MfaEnrolment)
async def login_enrolment(body: MfaLoginEnrol, ctx: Ctx) -> MfaEnrolment:
    """Start enrolling during a login that answered mfa_enrolment_required; confirm it by
    sending the app's first code to POST /api/v1/auth/login/mfa with the same challenge."""
    claims = _challenge(ctx, body.challenge)
    if not claims.extra.get("enrol"):
        raise PermissionDenied("this login does not need an enrolment", code="mfa_not_enrolling")
    return await _start(ctx, user_id=claims.subject)


async def _start(ctx: AppContext, *, user_id: str) -> MfaEnrolment:
    started = await mfa.start_enrolment(
        ctx.db, cipher=ctx.mfa_cipher, user_id=user_id, issuer=ctx.settings.mfa_issuer
    )
    return MfaEnrolment(secret=started.secret, otpauth_uri=started.uri, qr_svg=started.qr)


@router.get("/api/v1/auth/mfa", response_model=MfaStatusRead)
async def my_factor(principal: User, ctx: Ctx) -> MfaStatusRead:
    found = await mfa.status(ctx.db, user_id=principal.user_id)
    return MfaStatusRead(
        enabled=found.enabled,
        confirmed_at=found.confirmed_at,
        recovery_codes_left=found.recovery_codes_left,
        required=found.required,
        available=found.available,
    )


@router.post("/api/v1/auth/mfa/enrolment", response_model=MfaEnrolment)
async def start_enrolment(principal: Login, ctx: Ctx) -> MfaEnrolment:
    """A new secret and its QR code; the factor is active once confirmed with a code."""
    return await _start(ctx, user_id=principal.user_id)


@router.post("/api/v1/auth/mfa/enrolment/confirm", response_model=MfaRecoveryCodes)
async def confirm_enrolment(body: MfaConfirm, principal: Login, ctx: Ctx) -> MfaRecoveryCodes:
    """Activate the factor with a code from the app: returns the recovery codes, once. Not
    counted against the login budget: whoever calls this was just shown the secret."""
    codes = await mfa.confirm_enrolment(
        ctx.db, cipher=ctx.mfa_cipher, user_id=principal.user_id, code=body.code, now=time.time()
    )
    if codes is None:
        raise PermissionDenied(
            "that code does not match: check the phone's clock and try the next one",
            code="invalid_mfa_code",
        )
    return MfaRecoveryCodes(recovery_codes=codes)


@router.post(
    "/api/v1/auth/mfa/disable",
    status_code=204,
    response_class=Response,
    response_model=None,
    responses=RATE_LIMITED,
)
async def disable(body: MfaProof, principal: Login, request: Request, ctx: Ctx) -> None:
    """Remove your own factor, proving it is you with a current code or your password."""
    await _prove(ctx, body=body, user_id=principal.user_id, request=request)
    await mfa.disable(ctx.db, user_id=principal.user_id)


@router.post(
    "/api/v1/auth/mfa/recovery-codes", response_model=MfaRecoveryCodes, responses=RATE_LIMITED
)
async def regenerate(
    body: MfaProof, principal: Login, request: Request, ctx: Ctx
) -> MfaRecoveryCodes:
    """New recovery codes (shown once) in place of the old ones, with a code or password."""
    await _prove(ctx, body=body, user_id=principal.user_id, request=request)
    return MfaRecoveryCodes(
        recovery_codes=await mfa.regenerate_codes(ctx.db, user_id=principal.user_id)
    )


async def _prove(ctx: AppContext, *, body: MfaProof, user_id: str, request: Request) -> None:
    """A current code or the password, on the login budgets; 403 when wrong (a 401 would sign
    the UI out of a login that is fine)."""
    async with ctx.db() as db:
        user = await db.get(UserRecord, user_id)
    if user is None:
        raise NotFound("user not found")

    async def attempt() -> bool | None:
        if body.code is not None:
            ok = await mfa.check_code(
                ctx.db, cipher=ctx.mfa_cipher, user_id=user_id, code=body.code, now=time.time()
            )
        else:
            found = await users.authenticate(
                ctx.db,
                username=user.username,
                password=body.password or "",
                verify=ctx.verify_password,
            )
            ok = found is not None
        return True if ok else None

    address = client_address(request)
    if await throttled(ctx, username=user.username, address=address, attempt=attempt) is None:
        raise PermissionDenied("the code or password is wrong", code="wrong_proof")


@router.delete(
    "/api/v1/users/{user_id}/mfa",
    status_code=204,
    response_class=Response,
    response_model=None,
    dependencies=[LoginOnly],
)
async def reset_factor(user_id: str, admin: Admin, ctx: Ctx) -> None:
    """Remove a user's factor (a lost phone): their org's admin, or a platform admin for any
    user. Their logins stay; they enrol again when they next sign in if their org requires
    it. Not an admin's own: turning that off asks for a code or the password (below)."""
    if user_id == admin.user_id:
        raise PermissionDenied(
            "turn your own second factor off from your account (it asks for a code or your "
            "password), not by resetting it",
            code="own_factor",
        )
    await mfa.reset(ctx.db, actor=admin, user_id=user_id)


@router.get("/api/v1/orgs/{org_id}/mfa", response_model=OrgMfaRead)
async def org_policy(org_id: str, admin: Admin, ctx: Ctx) -> OrgMfaRead:
    required = await mfa_policy.get_org_required(ctx.db, actor=admin, org_id=org_id)
    return OrgMfaRead(org_id=org_id, required=required)


@router.put("/api/v1/orgs/{org_id}/mfa", response_model=OrgMfaRead, dependencies=[LoginOnly])
async def set_org_policy(org_id: str, body: OrgMfa, admin: Admin, ctx: Ctx) -> OrgMfaRead:
    """Require (or stop requiring) a second factor of the org's local users: its admin, or a
    platform admin for any org. Users without one enrol at their next login."""
    required = await mfa_policy.set_org_required(
        ctx.db, actor=admin, org_id=org_id, required=body.required
    )
    return OrgMfaRead(org_id=org_id, required=required)
