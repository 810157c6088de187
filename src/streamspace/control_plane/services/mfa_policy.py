"""Who must have a second factor and who has one: an org's "MFA required" flag (its admins,
or a platform admin) and the admin's view of which users have a factor. The factors
themselves are services/mfa.py's."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.db.records import AuditEventRecord, MfaFactorRecord, OrgRecord
from streamspace.errors import NotFound, PermissionDenied


async def enabled_among(
    sessions: async_sessionmaker[AsyncSession], *, user_ids: Iterable[str]
) -> set[str]:
    """Which of these users have an active factor (the admin's user list shows it)."""
    ids = list(user_ids)
    if not ids:
        return set()
    async with sessions() as db:
        rows = await db.scalars(
            select(MfaFactorRecord.user_id).where(
                MfaFactorRecord.user_id.in_(ids), MfaFactorRecord.confirmed_at.is_not(None)
            )
        )
        return set(rows.all())


async def get_org_required(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, org_id: str
) -> bool:
    async with sessions() as db:
        return (await _org_of(db, actor=actor, org_id=org_id, lock=False)).mfa_required


async def set_org_required(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, org_id: str, required: bool
) -> bool:
    """Turn "MFA required" on or off for an org: its admin, or a platform admin. Users without
    a factor enrol at their next login; logins already open are left alone."""
    async with sessions.begin() as db:
        org = await _org_of(db, actor=actor, org_id=org_id, lock=True)
        if org.mfa_required != required:
            org.mfa_required = required
            db.add(
                AuditEventRecord(
                    org_id=org.id,
                    actor=actor.username,
                    action="org.mfa_required_changed",
                    target=org.id,
                    detail={"org": org.name, "mfa_required": required},
                )
            )
        return org.mfa_required


async def _org_of(db: AsyncSession, *, actor: Principal, org_id: str, lock: bool) -> OrgRecord:
    if org_id != actor.org_id and not actor.is_platform_admin:
        raise NotFound("org not found")  # other orgs are invisible, as their users are
    if not actor.is_admin:
        raise PermissionDenied("admin role required")
    org = await db.get(OrgRecord, org_id, with_for_update=lock)
    if org is None:
        raise NotFound("org not found")
    return org
