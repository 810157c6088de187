"""`POST /api/v1/sessions/{id}/stream`: a short-lived token scoped to one session's VNC stream.

The token can open that session's viewer socket and nothing else (not the REST API)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from streamspace.control_plane.api.deps import Ctx, User
from streamspace.control_plane.auth.tokens import session_token
from streamspace.control_plane.services import audit
from streamspace.errors import NotFound

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"])
STREAM_TOKEN_TTL = 60.0


class StreamRequest(BaseModel):
    as_admin: bool = False


class StreamGrant(BaseModel):
    token: str
    url: str
    expires_in: int


@router.post("/{session_id}/stream", response_model=StreamGrant)
async def stream_token(
    session_id: str, principal: User, ctx: Ctx, body: StreamRequest | None = None
) -> StreamGrant:
    session = await ctx.session_service.get(principal=principal, session_id=session_id)
    if session.user_id != principal.user_id and not (principal.is_admin and body and body.as_admin):
        raise NotFound("session not found")  # admins view others' sessions only when they ask
    if session.user_id != principal.user_id:
        await audit.record(
            ctx.db,
            org_id=principal.org_id,
            actor=principal.username,
            action="session.viewed",
            target=session_id,
            detail={"owner": session.user_id},
        )
    token = session_token(
        ctx.tokens,
        principal=principal,
        session_id=session_id,
        purpose="stream",
        ttl=STREAM_TOKEN_TTL,
    )
    return StreamGrant(
        token=token,
        url=f"/api/v1/sessions/{session_id}/vnc?token={token}",
        expires_in=int(STREAM_TOKEN_TTL),
    )
