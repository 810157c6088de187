"""Users and orgs: first-start admin, creation, login, passwords, enable/disable. Owns its
transactions."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.auth.passwords import (
    PasswordVerifier,
    hash_password,
    verify_password,
)
from streamspace.control_plane.db.records import OrgRecord, UserRecord
from streamspace.errors import Conflict, NotFound, ValidationFailed

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
) -> UserRecord:
    check_new_credentials(username=username, password=password)
    password_hash = await hash_password(password)
    try:
        async with sessions.begin() as db:
            if await db.scalar(select(UserRecord.id).where(UserRecord.username == username)):
                raise Conflict(f"user {username!r} already exists", code="user_exists")
            org_id = org_id or (await default_org(db)).id
            user = UserRecord(
                username=username,
                password_hash=password_hash,
                role=role,
                org_id=org_id,
                platform_admin=platform_admin,
            )
            db.add(user)
    except IntegrityError as exc:
        # Inserted meanwhile by another request or replica: the user, or on a new database
        # the default org (replicas starting together each create the first admin).
        raise Conflict(
            f"user {username!r} (or the default org) was created at the same moment",
            code="user_exists",
        ) from exc
    return user


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


async def get_user_by_name(
    sessions: async_sessionmaker[AsyncSession], *, username: str
) -> UserRecord:
    async with sessions() as db:
        user = await db.scalar(select(UserRecord).where(UserRecord.username == username))
    if user is None:
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
    if user is None or not ok or user.disabled:
        return None
    return user
