"""Single sign-on at the edge: which sign-ins the login page offers, the OpenID Connect round
trip (start, callback, the SPA redeeming its login) and LDAP passwords for POST /auth/login.

The round trip may cross replicas: what the callback must find again (state, nonce, PKCE
verifier, where to go next) rides in a short-lived cookie signed with the cluster secret, which
also binds the callback to the browser that started it. The callback then hands the login over
in a second HttpOnly cookie, valid for one minute, that only POST /oidc/redeem reads: the login
token never appears in a URL. The handoff's id becomes the login's id, so a second redemption
collides with the first login and is refused, on any replica."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from streamspace.config.redis_urls import split_list
from streamspace.control_plane.api.deps import Ctx
from streamspace.control_plane.api.schemas import TokenResponse
from streamspace.control_plane.auth.oidc import OidcRelyingParty
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.db.records import UserRecord
from streamspace.control_plane.services import audit, identities
from streamspace.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    StreamSpaceError,
    Unauthenticated,
    Unavailable,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
log = logging.getLogger(__name__)

CALLBACK_PATH = "/api/v1/auth/oidc/callback"
REDEEM_PATH = "/api/v1/auth/oidc/redeem"
STATE_COOKIE = "streamspace_oidc"
HANDOFF_COOKIE = "streamspace_sso"
STATE_TTL = 600.0  # the person may take a while at the provider's login page
HANDOFF_TTL = 60.0
STATE, HANDOFF = "oidc_state", "oidc_handoff"  # token purposes


class OidcProvider(BaseModel):
    name: str
    login_url: str


class AuthProviders(BaseModel):
    password: bool  # show the username/password form (local and LDAP accounts)
    oidc: OidcProvider | None


class SsoTokenResponse(TokenResponse):
    # where the browser goes after logging out to end its provider session too (RP-initiated
    # logout); null when the provider has no end_session_endpoint
    logout_url: str | None = None


@router.get("/providers", response_model=AuthProviders)
async def providers(ctx: Ctx) -> AuthProviders:
    """Public: what the login page shows."""
    s = ctx.settings
    oidc = None
    if ctx.oidc is not None:
        oidc = OidcProvider(name=s.oidc_display_name, login_url="/api/v1/auth/oidc/login")
    return AuthProviders(password=s.password_login or oidc is None, oidc=oidc)


def _base_url(ctx: AppContext, request: Request) -> str:
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


def _safe_next(value: str | None) -> str:
    """Only a path of this site: never an open redirect to another."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def _set_cookie(
    response: Response, request: Request, *, name: str, value: str, path: str, ttl: float
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(ttl),
        path=path,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",  # sent on the provider's top-level redirect back to us
    )


@router.get(
    "/oidc/login",
    response_class=RedirectResponse,
    status_code=302,
    responses={404: {"description": "OpenID Connect is not configured"}},
)
async def oidc_login(
    request: Request, ctx: Ctx, next: Annotated[str | None, Query()] = None
) -> Response:
    """Start signing in at the provider: a browser navigation, answered with a redirect (to
    the login page, saying why, when the provider cannot be reached)."""
    rp = _relying_party(ctx)
    base = _base_url(ctx, request)
    try:
        auth = await rp.authorization_request(redirect_uri=base + CALLBACK_PATH)
    except Unavailable as exc:
        log.warning("OpenID Connect sign-in cannot start: %s", exc.message)
        return RedirectResponse(f"/login?{urlencode({'sso_error': exc.message})}", 302)
    kept, _ = ctx.tokens.issue(
        subject="oidc",
        purpose=STATE,
        ttl=STATE_TTL,
        state=auth.state,
        nonce=auth.nonce,
        verifier=auth.verifier,
        next=_safe_next(next),
    )
    response = RedirectResponse(auth.url, status_code=302)
    _set_cookie(response, request, name=STATE_COOKIE, value=kept, path=CALLBACK_PATH, ttl=STATE_TTL)
    return response


def _relying_party(ctx: AppContext) -> OidcRelyingParty:
    if ctx.oidc is None:
        raise NotFound("OpenID Connect sign-in is not configured", code="sso_disabled")
    return ctx.oidc


@router.get("/oidc/callback", response_class=RedirectResponse, status_code=302)
async def oidc_callback(
    request: Request,
    ctx: Ctx,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
    kept: Annotated[str | None, Cookie(alias=STATE_COOKIE)] = None,
) -> Response:
    """The provider sends the browser back here. Failures go to the login page, which shows
    the reason (`/login?sso_error=...`), and into the audit trail."""
    base = _base_url(ctx, request)
    address = request.client.host if request.client else "unknown"
    try:
        target, handoff = await _finish(
            ctx, base=base, code=code, state=state, kept=kept, error=error or error_description
        )
    except StreamSpaceError as exc:
        log.info("OpenID Connect sign-in failed from %s: %s", address, exc.message)
        await audit.record(
            ctx.db,
            org_id=None,
            actor="oidc",
            action="auth.login_failed",
            detail={"method": "oidc", "address": address, "reason": exc.message},
        )
        response = RedirectResponse(f"/login?{urlencode({'sso_error': exc.message})}", 302)
        response.delete_cookie(STATE_COOKIE, path=CALLBACK_PATH)
        return response
    response = RedirectResponse(f"/auth/callback?{urlencode({'next': target})}", 302)
    response.delete_cookie(STATE_COOKIE, path=CALLBACK_PATH)  # one use
    _set_cookie(
        response, request, name=HANDOFF_COOKIE, value=handoff, path=REDEEM_PATH, ttl=HANDOFF_TTL
    )
    return response


async def _finish(
    ctx: AppContext,
    *,
    base: str,
    code: str | None,
    state: str | None,
    kept: str | None,
    error: str | None,
) -> tuple[str, str]:
    """Check the round trip, sign the user in (created on first sight): where to go next
    and the handoff for /oidc/redeem."""
    rp = _relying_party(ctx)
    if error:
        raise Unauthenticated(
            f"the identity provider refused the sign-in: {error}", code="sso_failed"
        )
    if not kept:
        raise Unauthenticated(
            "this sign-in was not started in this browser, or took too long: start again",
            code="sso_state",
        )
    started = ctx.tokens.decode(kept, purpose=STATE).extra
    if not code or not state or state != started.get("state"):
        raise Unauthenticated(
            "the sign-in's state does not match the one this browser started: start again",
            code="sso_state",
        )
    signed = await rp.finish(
        code=code,
        redirect_uri=base + CALLBACK_PATH,
        verifier=str(started["verifier"]),
        nonce=str(started["nonce"]),
    )
    user = await _provisioned(ctx, claims=signed.claims)
    handoff, _ = ctx.tokens.issue(
        subject=user.id, purpose=HANDOFF, ttl=HANDOFF_TTL, idt=signed.id_token
    )
    return _safe_next(str(started.get("next") or "/")), handoff


def _groups(value: object) -> set[str]:
    if isinstance(value, str):
        return set(split_list(value))
    if isinstance(value, list):
        return {str(v) for v in value}
    return set()


async def _provisioned(ctx: AppContext, *, claims: dict[str, Any]) -> UserRecord:
    s = ctx.settings
    raw_name = claims.get(s.oidc_username_claim)
    if not isinstance(raw_name, str) or not raw_name:
        raise Unauthenticated(
            f"the identity provider sent no {s.oidc_username_claim!r} claim", code="sso_failed"
        )
    admin_groups = set(split_list(s.oidc_admin_groups))
    org = claims.get(s.oidc_org_claim) if s.oidc_org_claim else None
    identity = identities.ExternalIdentity(
        source="oidc",
        subject=str(claims["sub"]),
        username=identities.normalise_username(raw_name),
        email=_text(claims.get(s.oidc_email_claim)),
        display_name=_text(claims.get(s.oidc_name_claim)),
        is_admin=bool(_groups(claims.get(s.oidc_groups_claim)) & admin_groups),
        org=org if isinstance(org, str) and org else None,
    )
    return await _signed_in(ctx, identity)


def _text(value: object) -> str | None:
    return value[:255] if isinstance(value, str) and value else None


async def _signed_in(ctx: AppContext, identity: identities.ExternalIdentity) -> UserRecord:
    done = await identities.sign_in(
        ctx.db, identity=identity, default_org=ctx.settings.sso_default_org
    )
    if done.role_changed:  # the user's other logins must not keep the old role
        await ctx.login_store.refresh_user(user_id=done.user.id)
        await ctx.events.refresh_user(user_id=done.user.id, reason="your role changed")
    return done.user


@router.post(
    "/oidc/redeem",
    response_model=SsoTokenResponse,
    responses={401: {"description": "No sign-in to redeem, or it was redeemed already"}},
)
async def oidc_redeem(
    request: Request,
    response: Response,
    ctx: Ctx,
    handoff: Annotated[str | None, Cookie(alias=HANDOFF_COOKIE)] = None,
) -> SsoTokenResponse:
    """The SPA's half of the callback: the login the provider vouched for, once."""
    response.delete_cookie(HANDOFF_COOKIE, path=REDEEM_PATH)
    if not handoff:
        raise Unauthenticated("no single sign-on to complete: sign in again", code="sso_handoff")
    claims = ctx.tokens.decode(handoff, purpose=HANDOFF)
    ttl = ctx.settings.access_token_ttl
    token, login = ctx.tokens.issue(
        subject=claims.subject, purpose="login", ttl=ttl, token_id=claims.token_id
    )
    try:
        await ctx.login_store.create(
            token_id=login.token_id, user_id=claims.subject, expires_at=login.expires_at
        )
    except IntegrityError:
        raise Unauthenticated(
            "this sign-in was used already: sign in again", code="sso_handoff"
        ) from None
    principal = await ctx.login_store.principal(token_id=login.token_id)  # still enabled?
    await audit.record(
        ctx.db,
        org_id=principal.org_id,
        actor=principal.username,
        action="auth.login",
        detail={"method": "oidc", "address": request.client.host if request.client else ""},
    )
    logout = None
    if ctx.oidc is not None:
        logout = await ctx.oidc.logout_url(
            id_token=str(claims.extra.get("idt", "")),
            post_logout_redirect_uri=_base_url(ctx, request) + "/login",
        )
    return SsoTokenResponse(access_token=token, expires_in=int(ttl), logout_url=logout)


async def directory_login(ctx: AppContext, *, username: str, password: str) -> UserRecord | None:
    """POST /auth/login for a name that is not a local user's: the LDAP directory checks the
    password (None when there is no directory, no such user or a wrong password, and when the
    password is right but the account may not sign in: disabled, removed, its name taken by
    a local user. The caller answers all of them alike and counts each as a failed attempt,
    so a right directory password of a disabled account is not told apart; the reason is
    logged for the admins)."""
    if ctx.ldap is None:
        return None
    found = await ctx.ldap.authenticate(username=username, password=password)
    if found is None:
        return None  # audited by the login as auth.login_failed (method ldap)
    identity = identities.ExternalIdentity(
        source="ldap",
        subject=found.dn.lower(),
        username=identities.normalise_username(found.username),
        email=found.email,
        display_name=found.display_name,
        is_admin=found.is_admin,
    )
    try:
        return await _signed_in(ctx, identity)
    except (Unauthenticated, Conflict, PermissionDenied) as exc:
        log.warning("LDAP sign-in of %r refused: %s (%s)", username, exc.message, exc.code)
        return None
