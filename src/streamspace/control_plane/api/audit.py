"""The audit trail, an admin's: `GET /api/v1/audit` reads it newest first, a page at a time,
filtered; `GET /api/v1/audit/export` streams every matching event as JSON lines. An org's
admin reads their org's events; a platform admin reads every org's and the platform's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from streamspace.control_plane.api.deps import Admin, Ctx
from streamspace.control_plane.api.schemas import AuditEventRead, AuditPage
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.services import audit
from streamspace.errors import PermissionDenied

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def _filter(
    admin: Admin,
    action: Annotated[
        str, Query(max_length=64, description="exact, or a prefix ending in * (auth.*)")
    ] = "",
    actor: Annotated[str, Query(max_length=120)] = "",
    target: Annotated[str, Query(max_length=120)] = "",
    org_id: Annotated[
        str, Query(max_length=32, description="one org's events (platform admins)")
    ] = "",
    since: Annotated[datetime | None, Query(description="from this time on (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="before this time (ISO 8601)")] = None,
) -> audit.AuditFilter:
    return audit.AuditFilter(
        org_id=_org_scope(admin, org_id),
        action=action,
        actor=actor,
        target=target,
        since=_aware(since),
        until=_aware(until),
    )


Filter = Annotated[audit.AuditFilter, Depends(_filter)]


@router.get("", response_model=AuditPage)
async def read_audit(
    where: Filter,
    ctx: Ctx,
    cursor: Annotated[str, Query(max_length=32, description="next_cursor of the last page")] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    async with ctx.db() as db:
        events, next_cursor = await audit.page(db, where=where, cursor=cursor, limit=limit)
    return AuditPage(
        events=[AuditEventRead.model_validate(e) for e in events], next_cursor=next_cursor
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines"}},
)
async def export_audit(where: Filter, admin: Admin, ctx: Ctx) -> StreamingResponse:
    """Every matching event, oldest first, one JSON object per line (the fields of
    AuditEventRead). The export itself is audited."""
    await audit.record(
        ctx.db,
        org_id=admin.org_id,
        actor=admin.username,
        action="audit.exported",
        detail={k: v for k, v in _described(where).items() if v},
    )

    async def lines() -> AsyncIterator[bytes]:
        async for event in audit.every(ctx.db, where=where):
            yield AuditEventRead.model_validate(event).model_dump_json().encode() + b"\n"

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.jsonl"'},
    )


def _org_scope(admin: Principal, org_id: str) -> str | None:
    """A platform admin reads every org (or the one asked for); an org's admin their own."""
    if admin.is_platform_admin:
        return org_id or None
    if org_id and org_id != admin.org_id:
        raise PermissionDenied(
            "only a platform admin reads other orgs' audit events", code="platform_admin_required"
        )
    return admin.org_id


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC, as the events' own times are."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _described(where: audit.AuditFilter) -> dict[str, str]:
    """The filter an export used, for its own audit event."""
    return {
        "org_id": where.org_id or "",
        "action": where.action,
        "actor": where.actor,
        "target": where.target,
        "since": where.since.isoformat() if where.since else "",
        "until": where.until.isoformat() if where.until else "",
    }
