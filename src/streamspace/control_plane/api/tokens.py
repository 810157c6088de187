"""Personal API tokens: `/api/v1/tokens` (your own: list, create, revoke) and
`/api/v1/admin/tokens` (an org admin: their org's; a platform admin: everyone's). Managing
tokens takes a login: an API token can neither make nor list tokens."""

from __future__ import annotations

from fastapi import APIRouter

from streamspace.control_plane.api.deps import Admin, Ctx, Login, LoginOnly
from streamspace.control_plane.api.schemas import ApiTokenCreate, ApiTokenCreated, ApiTokenRead
from streamspace.control_plane.auth.api_tokens import PREFIX, credential
from streamspace.control_plane.db.records import utcnow
from streamspace.control_plane.services import api_tokens
from streamspace.control_plane.services.api_tokens import OwnedToken

router = APIRouter(tags=["tokens"])


@router.get("/api/v1/tokens", response_model=list[ApiTokenRead])
async def list_tokens(principal: Login, ctx: Ctx) -> list[ApiTokenRead]:
    """Your tokens, newest first, revoked and expired ones included; never their secrets."""
    return [_read(t) for t in await api_tokens.list_tokens(ctx.db, user_id=principal.user_id)]


@router.post("/api/v1/tokens", response_model=ApiTokenCreated, status_code=201)
async def create_token(body: ApiTokenCreate, principal: Login, ctx: Ctx) -> ApiTokenCreated:
    """A new token; `token` is in this answer only. Send it as `Authorization: Bearer`."""
    record, token = await api_tokens.create_token(
        ctx.db,
        owner=principal,
        name=body.name,
        scope=body.scope,
        expires_in_days=body.expires_in_days,
    )
    owned = OwnedToken(record, principal.username)
    return ApiTokenCreated(**_read(owned).model_dump(), token=token)


@router.delete("/api/v1/tokens/{token_id}", response_model=ApiTokenRead)
async def revoke_token(token_id: str, principal: Login, ctx: Ctx) -> ApiTokenRead:
    """Revoke a token of yours or (admins) of a user you manage: refused at once on every
    replica, and the sockets opened under it close."""
    owned = await api_tokens.revoke_token(
        ctx.db, actor=principal, token_id=token_id.removeprefix(PREFIX)
    )
    await ctx.events.end_logins(
        user_id=owned.record.user_id,
        login_id=credential(owned.record.id),
        reason="the API token was revoked",
    )
    return _read(owned)


@router.get("/api/v1/admin/tokens", response_model=list[ApiTokenRead], dependencies=[LoginOnly])
async def list_org_tokens(admin: Admin, ctx: Ctx, user_id: str | None = None) -> list[ApiTokenRead]:
    """Tokens of your org's users (a platform admin: of every org), optionally one user's."""
    org_id = None if admin.is_platform_admin else admin.org_id
    owned = await api_tokens.list_tokens(ctx.db, user_id=user_id, org_id=org_id)
    return [_read(t) for t in owned]


def _read(owned: OwnedToken) -> ApiTokenRead:
    r = owned.record
    status = "revoked" if r.revoked_at else "expired" if r.expires_at <= utcnow() else "active"
    return ApiTokenRead(
        id=r.id,
        prefix=credential(r.id),
        name=r.name,
        scope=r.scope,
        user_id=r.user_id,
        username=owned.username,
        created_at=r.created_at,
        expires_at=r.expires_at,
        last_used_at=r.last_used_at,
        last_used_address=r.last_used_address,
        revoked_at=r.revoked_at,
        revoked_by=r.revoked_by,
        status=status,
    )
