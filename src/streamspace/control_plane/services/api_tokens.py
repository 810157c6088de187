"""Personal API tokens' use cases: create (the token is returned once, only its digest kept),
list, revoke (by the owner, an admin of the owner's org, or a platform admin), and revoke all
of a user's when they are disabled or removed. Each audited in its own transaction. Checking a
token on a request is auth/api_tokens.py's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.auth.api_tokens import SCOPES, digest, new_token
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.db.records import (
    ApiTokenRecord,
    AuditEventRecord,
    UserRecord,
    utcnow,
)
from streamspace.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

MAX_ACTIVE_TOKENS = 50  # per user: a bound on what a script gone wrong can pile up
MAX_DAYS = 365


@dataclass(frozen=True)
class OwnedToken:
    record: ApiTokenRecord
    username: str


async def create_token(
    sessions: async_sessionmaker[AsyncSession],
    *,
    owner: Principal,
    name: str,
    scope: str,
    expires_in_days: int,
) -> tuple[ApiTokenRecord, str]:
    """A new token of `owner`'s and its secret string, which nothing can show again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed("a token's name must be 1-100 characters")
    if scope not in SCOPES:
        raise ValidationFailed(f"scope must be one of {', '.join(SCOPES)}")
    if not 1 <= expires_in_days <= MAX_DAYS:
        raise ValidationFailed(f"a token expires after 1 to {MAX_DAYS} days")
    token_id, token = new_token()
    now = utcnow()
    async with sessions.begin() as db:
        # the owner's row, locked: two creations at once cannot both pass the count
        user = await db.get(UserRecord, owner.user_id, with_for_update=True)
        if user is None or user.disabled or user.removed_at is not None:
            raise PermissionDenied("account is disabled or no longer exists")
        if await _active_count(db, user_id=user.id) >= MAX_ACTIVE_TOKENS:
            raise Conflict(
                f"you have {MAX_ACTIVE_TOKENS} live API tokens; revoke one first",
                code="too_many_tokens",
            )
        record = ApiTokenRecord(
            id=token_id,
            user_id=user.id,
            org_id=user.org_id,
            name=name,
            scope=scope,
            secret_hash=digest(token),
            created_at=now,
            expires_at=now + timedelta(days=expires_in_days),
        )
        db.add(record)
        db.add(
            _audit(
                actor=owner.username,
                record=record,
                owner=user.username,
                action="token.created",
                extra={"expires_at": record.expires_at.isoformat()},
            )
        )
    return record, token


async def _active_count(db: AsyncSession, *, user_id: str) -> int:
    return int(
        await db.scalar(
            select(func.count())
            .select_from(ApiTokenRecord)
            .where(
                ApiTokenRecord.user_id == user_id,
                ApiTokenRecord.revoked_at.is_(None),
                ApiTokenRecord.expires_at > utcnow(),
            )
        )
        or 0
    )


async def list_tokens(
    sessions: async_sessionmaker[AsyncSession],
    *,
    user_id: str | None = None,
    org_id: str | None = None,
) -> list[OwnedToken]:
    """Tokens of one user, of one org, or (neither given) all, newest first, with their
    owners' names; revoked and expired ones included (the UI greys them)."""
    query = select(ApiTokenRecord, UserRecord.username).join(
        UserRecord, UserRecord.id == ApiTokenRecord.user_id
    )
    if user_id is not None:
        query = query.where(ApiTokenRecord.user_id == user_id)
    if org_id is not None:
        query = query.where(ApiTokenRecord.org_id == org_id)
    async with sessions() as db:
        rows = await db.execute(query.order_by(ApiTokenRecord.created_at.desc()))
        return [OwnedToken(record, username) for record, username in rows.all()]


async def revoke_token(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, token_id: str
) -> OwnedToken:
    """Revoke a token (again: a no-op). Its owner may, an admin of the owner's org may (but
    a platform admin's tokens only a platform admin), a platform admin may any; to anyone
    else it does not exist."""
    async with sessions.begin() as db:
        record = await db.get(ApiTokenRecord, token_id, with_for_update=True)
        owner = await db.get(UserRecord, record.user_id) if record is not None else None
        if record is None or owner is None or not _visible(actor=actor, record=record):
            raise NotFound("API token not found")
        if owner.id != actor.user_id and owner.platform_admin and not actor.is_platform_admin:
            raise PermissionDenied(
                "only a platform admin can revoke a platform admin's tokens",
                code="platform_admin_required",
            )
        if record.revoked_at is None:
            record.revoked_at, record.revoked_by = utcnow(), actor.username
            db.add(
                _audit(
                    actor=actor.username,
                    record=record,
                    owner=owner.username,
                    action="token.revoked",
                )
            )
    return OwnedToken(record, owner.username)


def _visible(*, actor: Principal, record: ApiTokenRecord) -> bool:
    return (
        record.user_id == actor.user_id
        or actor.is_platform_admin
        or (actor.is_admin and record.org_id == actor.org_id)
    )


async def revoke_user_tokens(
    sessions: async_sessionmaker[AsyncSession], *, actor: str, user_id: str, reason: str
) -> list[str]:
    """Revoke every live token of a user (disabled, removed); the ids revoked."""
    async with sessions.begin() as db:
        records = list(
            await db.scalars(
                select(ApiTokenRecord)
                .where(ApiTokenRecord.user_id == user_id, ApiTokenRecord.revoked_at.is_(None))
                .with_for_update()
            )
        )
        owner = await db.get(UserRecord, user_id)
        now = utcnow()
        for record in records:
            record.revoked_at, record.revoked_by = now, actor
            db.add(
                _audit(
                    actor=actor,
                    record=record,
                    owner=owner.username if owner else "",
                    action="token.revoked",
                    extra={"reason": reason},
                )
            )
    return [record.id for record in records]


def _audit(
    *,
    actor: str,
    record: ApiTokenRecord,
    owner: str,
    action: str,
    extra: dict[str, str] | None = None,
) -> AuditEventRecord:
    return AuditEventRecord(
        org_id=record.org_id,
        actor=actor,
        action=action,
        target=record.id,
        detail={"token": record.name, "owner": owner, "scope": record.scope, **(extra or {})},
    )
