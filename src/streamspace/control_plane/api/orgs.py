"""Orgs, a platform admin's: list them, and create one together with its first admin (who then
manages that org's users, templates and sessions)."""

from __future__ import annotations

from fastapi import APIRouter

from streamspace.control_plane.api.deps import Ctx, LoginOnly, PlatformAdmin
from streamspace.control_plane.api.schemas import OrgCreate, OrgCreated, OrgRead, UserRead
from streamspace.control_plane.services import users

router = APIRouter(prefix="/api/v1/orgs", tags=["orgs"])


@router.get("", response_model=list[OrgRead])
async def list_orgs(admin: PlatformAdmin, ctx: Ctx) -> list[OrgRead]:
    return [
        OrgRead(
            id=org.id,
            name=org.name,
            created_at=org.created_at,
            users=count,
            mfa_required=org.mfa_required,
        )
        for org, count in await users.list_orgs(ctx.db)
    ]


@router.post("", response_model=OrgCreated, status_code=201, dependencies=[LoginOnly])
async def create_org(body: OrgCreate, admin: PlatformAdmin, ctx: Ctx) -> OrgCreated:
    org, first = await users.create_org(
        ctx.db,
        name=body.name,
        admin_username=body.admin.username,
        admin_password=body.admin.password,
        actor=admin.username,
    )
    return OrgCreated(
        id=org.id,
        name=org.name,
        created_at=org.created_at,
        users=1,
        admin=UserRead.model_validate(first),
    )
