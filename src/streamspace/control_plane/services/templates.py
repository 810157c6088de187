"""The app catalog: template CRUD (admins write, users read) and the first-start seed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import AuditEventRecord, TemplateRecord
from streamspace.errors import Conflict, NotFound

SEED_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "terminal",
        "display_name": "Terminal",
        "category": "Development",
        "description": "A light X desktop with xterm; built locally by images/build.sh.",
        "image": "streamspace/terminal:bookworm",
        "icon": "terminal",
        "cpu_limit": 1.0,
        "memory_limit_mb": 1024,
    },
    {
        "name": "browser",
        "display_name": "Web Browser",
        "category": "Internet",
        "description": "Firefox ESR on a light desktop; built locally by images/build.sh browser.",
        "image": "streamspace/browser:bookworm",
        "icon": "globe",
        "cpu_limit": 2.0,
        "memory_limit_mb": 2048,
    },
    {
        "name": "xfce-desktop",
        "display_name": "Xfce Desktop (public image)",
        "category": "Desktop",
        "description": "Debian Xfce desktop from the public consol/debian-xfce-vnc image; "
        "needs a machine that can pull from Docker Hub.",
        "image": "consol/debian-xfce-vnc:latest",
        "vnc_port": 5901,
        "icon": "desktop",
        "env": {"VNC_PW": "vncpassword"},
        "cpu_limit": 2.0,
        "memory_limit_mb": 2048,
    },
]


async def list_templates(
    db: AsyncSession, *, org_id: str, category: str | None = None
) -> list[TemplateRecord]:
    query = select(TemplateRecord).where(TemplateRecord.org_id == org_id)
    if category:
        query = query.where(TemplateRecord.category == category)
    return list((await db.scalars(query.order_by(TemplateRecord.name))).all())


async def find_template(db: AsyncSession, *, org_id: str, name: str) -> TemplateRecord | None:
    return await db.scalar(
        select(TemplateRecord).where(TemplateRecord.org_id == org_id, TemplateRecord.name == name)
    )


async def get_template(db: AsyncSession, *, org_id: str, name: str) -> TemplateRecord:
    template = await find_template(db, org_id=org_id, name=name)
    if template is None:
        raise NotFound(f"template {name!r} not found")
    return template


_TEMPLATE_BY_NAME = select(TemplateRecord.__table__).where(
    TemplateRecord.org_id == bindparam("org"), TemplateRecord.name == bindparam("name")
)


async def read_template(conn: AsyncConnection, *, org_id: str, name: str) -> Row[Any]:
    """`get_template` for a read-only request: a Core row (attribute access like the record),
    no ORM session."""
    row = (await conn.execute(_TEMPLATE_BY_NAME, {"org": org_id, "name": name})).first()
    if row is None:
        raise NotFound(f"template {name!r} not found")
    return row


def _audit(*, org_id: str, actor: str, action: str, name: str, **detail: Any) -> AuditEventRecord:
    return AuditEventRecord(org_id=org_id, actor=actor, action=action, target=name, detail=detail)


async def create_template(
    sessions: async_sessionmaker[AsyncSession],
    *,
    org_id: str,
    fields: dict[str, Any],
    actor: str = "system",
) -> TemplateRecord:
    try:
        async with sessions.begin() as db:
            if await find_template(db, org_id=org_id, name=fields["name"]):
                raise Conflict(
                    f"template {fields['name']!r} already exists", code="template_exists"
                )
            template = TemplateRecord(org_id=org_id, **fields)
            db.add(template)
            db.add(
                _audit(org_id=org_id, actor=actor, action="template.created", name=fields["name"])
            )
    except IntegrityError as exc:
        raise Conflict(
            f"template {fields['name']!r} already exists", code="template_exists"
        ) from exc
    return template


async def update_template(
    sessions: async_sessionmaker[AsyncSession],
    *,
    org_id: str,
    name: str,
    fields: dict[str, Any],
    actor: str = "system",
) -> TemplateRecord:
    async with sessions.begin() as db:
        template = await get_template(db, org_id=org_id, name=name)
        for key, value in fields.items():
            setattr(template, key, value)
        db.add(
            _audit(
                org_id=org_id,
                actor=actor,
                action="template.updated",
                name=name,
                fields=sorted(fields),
            )
        )
    return template


async def delete_template(
    sessions: async_sessionmaker[AsyncSession], *, org_id: str, name: str, actor: str = "system"
) -> None:
    from streamspace.control_plane.db.records import SessionRecord

    async with sessions.begin() as db:
        template = await get_template(db, org_id=org_id, name=name)
        in_use = await db.scalar(
            select(SessionRecord.id)
            .where(SessionRecord.template_id == template.id, SessionRecord.state != "terminated")
            .limit(1)
        )
        if in_use:
            raise Conflict(
                f"template {name!r} has live sessions; terminate them first", code="template_in_use"
            )
        # Ended sessions keep their template_name; only the link goes.
        await db.execute(
            update(SessionRecord)
            .where(SessionRecord.template_id == template.id)
            .values(template_id=None)
        )
        await db.delete(template)
        db.add(_audit(org_id=org_id, actor=actor, action="template.deleted", name=name))


async def seed_templates(sessions: async_sessionmaker[AsyncSession], *, org_id: str) -> int:
    """Add the seed catalog on first start (when the org has no templates)."""
    async with sessions() as db:
        if await list_templates(db, org_id=org_id):
            return 0
    created = 0
    for fields in SEED_TEMPLATES:
        try:
            await create_template(sessions, org_id=org_id, fields=dict(fields))
            created += 1
        except Conflict:
            continue
    return created
