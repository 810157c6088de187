"""Users and orgs: first-start admin, creation, login, passwords, what an admin may change of
whom, removal, new orgs with their first admin. Owns its transactions.

Who manages whom: an org's admin manages the users of their own org; a platform admin is an
admin who also runs the platform (agents, replicas, orgs), and only a platform admin may make,
change, disable or remove one. A removed user keeps their row (sessions and the audit trail
point at it) and their name stays taken: homes are named after the username, and a newcomer
under the same name must not be handed the removed user's files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.auth.passwords import (
    PasswordVerifier,
    hash_password,
    verify_password,
)
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.db.records import AuditEventRecord, OrgRecord, UserRecord, utcnow
from streamspace.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

DEFAULT_ORG = "default"
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


async def default_org(db: AsyncSession) -> OrgRecord:
    org = await db.scalar(select(OrgRecord).where(OrgRecord.name == DEFAULT_ORG))
    if org is None:
        org = OrgRecord(name=DEFAULT_ORG)
        db.add(org)
        await db.flush()
    return org


def check_new_credentials(*, username: str, password: str) -> None:
    if not USERNAME_RE.match(username):
        raise ValidationFailed("username must be 2-63 characters: lowercase letters, digits, . _ -")
    check_new_password(password)


def check_new_password(password: str) -> None:
    if len(password) < 8:
        raise ValidationFailed("password must be at least 8 characters")


async def create_user(
    sessions: async_sessionmaker[AsyncSession],
    *,
    username: str,
    password: str,
    role: str = "user",
    org_id: str | None = None,
    platform_admin: bool = False,
    actor: str = "system",
) -> UserRecord:
    """A new local user; audited as `user.created` by `actor` (a username, `cli`, or
    `system` for the first admin) in the same transaction."""
    check_new_credentials(username=username, password=password)
    _check_platform_role(role=role, platform_admin=platform_admin)
    password_hash = await hash_password(password)
    try:
        async with sessions.begin() as db:
            org_id = org_id or (await default_org(db)).id
            user = await _add_user(
                db,
                username=username,
                password_hash=password_hash,
                role=role,
                org_id=org_id,
                platform_admin=platform_admin,
            )
            db.add(
                AuditEventRecord(
                    org_id=org_id,
                    actor=actor,
                    action="user.created",
                    target=user.id,
                    detail={"user": username, "role": role, "platform_admin": platform_admin},
                )
            )
            return user
    except IntegrityError as exc:
        # Inserted meanwhile by another request or replica: the user, or on a new database
        # the default org (replicas starting together each create the first admin).
        raise Conflict(
            f"user {username!r} (or the default org) was created at the same moment",
            code="user_exists",
        ) from exc


async def _add_user(
    db: AsyncSession,
    *,
    username: str,
    password_hash: str,
    role: str,
    org_id: str,
    platform_admin: bool,
) -> UserRecord:
    taken = await db.scalar(select(UserRecord).where(UserRecord.username == username))
    if taken is not None and taken.removed_at is not None:
        raise Conflict(
            f"user {username!r} was removed; the name stays taken so that nobody new is given"
            " their files: choose another name",
            code="user_removed",
        )
    if taken is not None:
        raise Conflict(f"user {username!r} already exists", code="user_exists")
    user = UserRecord(
        username=username,
        password_hash=password_hash,
        role=role,
        org_id=org_id,
        platform_admin=platform_admin,
    )
    db.add(user)
    await db.flush()
    return user


def _check_platform_role(*, role: str, platform_admin: bool) -> None:
    if platform_admin and role != "admin":
        raise ValidationFailed("a platform admin must have the admin role")


def check_grants(*, actor_is_platform_admin: bool, platform_admin: bool | None) -> None:
    """Only a platform admin makes (or unmakes) platform admins."""
    if platform_admin is not None and not actor_is_platform_admin:
        raise PermissionDenied(
            "only a platform admin can make or unmake platform admins",
            code="platform_admin_required",
        )


async def ensure_admin(
    sessions: async_sessionmaker[AsyncSession], *, username: str, password: str
) -> bool:
    """Create the first admin, a platform admin, when the database has no users; True if one
    was created."""
    async with sessions() as db:
        if await db.scalar(select(func.count()).select_from(UserRecord)):
            return False
    try:
        await create_user(
            sessions, username=username, password=password, role="admin", platform_admin=True
        )
    except Conflict:  # another replica created it first
        return False
    return True


async def set_password(
    sessions: async_sessionmaker[AsyncSession], *, user_id: str, password: str
) -> UserRecord:
    """Give the user a new password (at least 8 characters). Ending their logins is the
    caller's part: the API closes their sockets too, the CLI cannot reach them."""
    check_new_password(password)
    password_hash = await hash_password(password)
    async with sessions.begin() as db:
        user = await db.get(UserRecord, user_id, with_for_update=True)
        if user is None:
            raise NotFound("user not found")
        user.password_hash = password_hash
    return user


async def org_by_name(sessions: async_sessionmaker[AsyncSession], *, name: str) -> OrgRecord:
    async with sessions() as db:
        org = await db.scalar(select(OrgRecord).where(OrgRecord.name == name))
    if org is None:
        raise NotFound(f"no org {name!r}")
    return org


async def get_user_by_name(
    sessions: async_sessionmaker[AsyncSession], *, username: str
) -> UserRecord:
    async with sessions() as db:
        user = await db.scalar(select(UserRecord).where(UserRecord.username == username))
    if user is None or user.removed_at is not None:
        raise NotFound(f"no user {username!r}")
    return user


async def authenticate(
    sessions: async_sessionmaker[AsyncSession],
    *,
    username: str,
    password: str,
    verify: PasswordVerifier = verify_password,
) -> UserRecord | None:
    async with sessions() as db:
        user = await db.scalar(select(UserRecord).where(UserRecord.username == username))
    ok = await verify(user.password_hash if user else None, password)
    # only local users have a password here (services/identities.py)
    if user is None or not ok or user.disabled or user.auth_source != "local":
        return None
    return user


async def org_of(sessions: async_sessionmaker[AsyncSession], *, username: str) -> str | None:
    """The org of the user with this name, None when there is none (for auditing a failed
    login where that user's org admins can see it)."""
    async with sessions() as db:
        return await db.scalar(select(UserRecord.org_id).where(UserRecord.username == username))


async def auth_source(sessions: async_sessionmaker[AsyncSession], *, username: str) -> str | None:
    """Where `username` signs in ("local", "oidc", "ldap"), or None for no such user."""
    async with sessions() as db:
        source: str | None = await db.scalar(
            select(UserRecord.auth_source).where(UserRecord.username == username)
        )
    return source


async def managed_user(
    db: AsyncSession, *, actor: Principal, user_id: str, removed_ok: bool = False
) -> UserRecord:
    """A user `actor` may manage: in their org and not removed (else not found, as another
    org's users are invisible), and a platform admin only for a platform admin. Read, not
    locked: `_locked_pair` is for changes."""
    user = await db.get(UserRecord, user_id)
    return _manageable(actor=actor, actor_row=None, user=user, removed_ok=removed_ok)


def _manageable(
    *, actor: Principal, actor_row: UserRecord | None, user: UserRecord | None, removed_ok: bool
) -> UserRecord:
    if (
        user is None
        or user.org_id != actor.org_id
        or (user.removed_at is not None and not removed_ok)
    ):
        raise NotFound("user not found")
    platform = actor.is_platform_admin if actor_row is None else _is_platform_admin(actor_row)
    if user.platform_admin and not platform:
        raise PermissionDenied(
            "only a platform admin can change a platform admin", code="platform_admin_required"
        )
    return user


def _is_platform_admin(user: UserRecord) -> bool:
    return user.role == "admin" and user.platform_admin


async def _locked_pair(
    db: AsyncSession, *, actor: Principal, user_id: str, removed_ok: bool = False
) -> tuple[UserRecord, UserRecord]:
    """The actor's and the user's rows, locked in one order (no deadlock between two admins
    changing each other), the actor's rights checked as they are now: two admins unmaking
    each other at the same moment cannot both succeed and leave the org or platform with
    none."""
    rows = {
        row.id: row
        for row in await db.scalars(
            select(UserRecord)
            .where(UserRecord.id.in_({actor.user_id, user_id}))
            .order_by(UserRecord.id)
            .with_for_update()
        )
    }
    actor_row = rows.get(actor.user_id)
    if (
        actor_row is None
        or actor_row.role != "admin"
        or actor_row.disabled
        or actor_row.removed_at is not None
    ):
        raise PermissionDenied("admin role required")
    user = _manageable(
        actor=actor, actor_row=actor_row, user=rows.get(user_id), removed_ok=removed_ok
    )
    return actor_row, user


@dataclass(frozen=True)
class UserChange:
    disabled: bool | None = None
    role: str | None = None
    platform_admin: bool | None = None


async def update_user(
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: Principal,
    user_id: str,
    change: UserChange,
) -> UserRecord:
    """Enable/disable, change role, make or unmake a platform admin (audited). Demoting a
    platform admin to user unmakes them too. Nobody disables, demotes or unmakes themselves."""
    async with sessions.begin() as db:
        actor_row, user = await _locked_pair(db, actor=actor, user_id=user_id)
        check_grants(
            actor_is_platform_admin=_is_platform_admin(actor_row),
            platform_admin=change.platform_admin,
        )
        if user.id == actor.user_id and (
            change.disabled or change.role == "user" or change.platform_admin is False
        ):
            raise Conflict("you cannot disable, demote or unmake yourself", code="self_lockout")
        role = change.role or user.role
        platform_admin = (
            user.platform_admin if change.platform_admin is None else change.platform_admin
        )
        if change.role == "user" and change.platform_admin is None:
            platform_admin = False
        _check_platform_role(role=role, platform_admin=platform_admin)
        before = {
            "disabled": user.disabled,
            "role": user.role,
            "platform_admin": user.platform_admin,
        }
        if change.disabled is not None:
            user.disabled = change.disabled
        user.role, user.platform_admin = role, platform_admin
        after = {
            "disabled": user.disabled,
            "role": user.role,
            "platform_admin": user.platform_admin,
        }
        changed = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
        if changed:
            db.add(_audit(actor=actor, user=user, action="user.updated", detail=changed))
    return user


async def remove_user(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, user_id: str
) -> UserRecord:
    """Mark the user removed (and disabled: no login takes them any more). Ending their
    logins and their sessions is the caller's part, as for disabling; removing a removed
    user again returns them, so a caller cut off half-way can finish that part."""
    async with sessions.begin() as db:
        _, user = await _locked_pair(db, actor=actor, user_id=user_id, removed_ok=True)
        if user.id == actor.user_id:
            raise Conflict("you cannot remove yourself", code="self_lockout")
        if user.removed_at is None:
            user.removed_at = utcnow()
            user.disabled = True
            db.add(_audit(actor=actor, user=user, action="user.removed", detail={}))
    return user


def _audit(
    *, actor: Principal, user: UserRecord, action: str, detail: Mapping[str, object]
) -> AuditEventRecord:
    return AuditEventRecord(
        org_id=user.org_id,
        actor=actor.username,
        action=action,
        target=user.id,
        detail={"user": user.username, **detail},
    )


async def create_org(
    sessions: async_sessionmaker[AsyncSession],
    *,
    name: str,
    admin_username: str,
    admin_password: str,
    actor: str,
) -> tuple[OrgRecord, UserRecord]:
    """A new org and its first admin, together or not at all."""
    if not USERNAME_RE.match(name):  # the same rule: short, lowercase, URL-safe
        raise ValidationFailed("org name must be 2-63 characters: lowercase letters, digits, . _ -")
    check_new_credentials(username=admin_username, password=admin_password)
    password_hash = await hash_password(admin_password)
    try:
        async with sessions.begin() as db:
            if await db.scalar(select(OrgRecord.id).where(OrgRecord.name == name)):
                raise Conflict(f"org {name!r} already exists", code="org_exists")
            org = OrgRecord(name=name)
            db.add(org)
            await db.flush()
            admin = await _add_user(
                db,
                username=admin_username,
                password_hash=password_hash,
                role="admin",
                org_id=org.id,
                platform_admin=False,
            )
            db.add(
                AuditEventRecord(
                    org_id=org.id,
                    actor=actor,
                    action="org.created",
                    target=org.id,
                    detail={"org": name, "admin": admin_username},
                )
            )
    except IntegrityError as exc:
        raise Conflict(
            f"org {name!r} or user {admin_username!r} was created at the same moment",
            code="org_exists",
        ) from exc
    return org, admin


async def list_orgs(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[OrgRecord, int]]:
    """Every org with its number of users (removed ones not counted), by name."""
    counts = (
        select(UserRecord.org_id, func.count().label("users"))
        .where(UserRecord.removed_at.is_(None))
        .group_by(UserRecord.org_id)
        .subquery()
    )
    async with sessions() as db:
        rows = await db.execute(
            select(OrgRecord, func.coalesce(counts.c.users, 0))
            .outerjoin(counts, counts.c.org_id == OrgRecord.id)
            .order_by(OrgRecord.name)
        )
        return [(org, int(users)) for org, users in rows.all()]
