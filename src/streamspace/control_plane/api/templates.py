"""The catalog: everyone reads templates, admins create, update and delete them."""

from __future__ import annotations

from fastapi import APIRouter, Response

from streamspace.control_plane.api.deps import Admin, Ctx, User
from streamspace.control_plane.api.schemas import TemplateCreate, TemplateRead, TemplateUpdate
from streamspace.control_plane.services import templates

router = APIRouter(prefix="/api/v1/templates", tags=["templates"])


@router.get("", response_model=list[TemplateRead])
async def list_templates(
    principal: User,
    ctx: Ctx,
    category: str | None = None,
) -> list[TemplateRead]:
    async with ctx.db() as db:
        rows = await templates.list_templates(db, org_id=principal.org_id, category=category)
        return [TemplateRead.model_validate(t) for t in rows]


@router.get("/{name}", response_model=TemplateRead)
async def get_template(name: str, principal: User, ctx: Ctx) -> TemplateRead:
    async with ctx.reads.connect() as conn:
        return TemplateRead.model_validate(
            await templates.read_template(conn, org_id=principal.org_id, name=name)
        )


@router.post("", response_model=TemplateRead, status_code=201)
async def create_template(body: TemplateCreate, admin: Admin, ctx: Ctx) -> TemplateRead:
    template = await templates.create_template(
        ctx.db, org_id=admin.org_id, fields=body.model_dump(), actor=admin.username
    )
    return TemplateRead.model_validate(template)


@router.patch("/{name}", response_model=TemplateRead)
async def update_template(name: str, body: TemplateUpdate, admin: Admin, ctx: Ctx) -> TemplateRead:
    template = await templates.update_template(
        ctx.db,
        org_id=admin.org_id,
        name=name,
        fields=body.model_dump(exclude_unset=True),
        actor=admin.username,
    )
    return TemplateRead.model_validate(template)


@router.delete("/{name}", status_code=204, response_class=Response, response_model=None)
async def delete_template(name: str, admin: Admin, ctx: Ctx) -> None:
    await templates.delete_template(ctx.db, org_id=admin.org_id, name=name, actor=admin.username)
