"""Personal API tokens: their format and hash, and the check of one on a request, read from the
database each time so that a revocation, an expiry or a disabled user counts on every replica
at once. Creating, listing and revoking them is services/api_tokens.py's.

A token is `sst_<id>_<secret>`: the prefix tells it from a login JWT without decoding, the id
finds its row, the secret is 256 random bits. Only SHA-256 of the whole string is kept. A slow
password hash (argon2) defends low-entropy secrets against guessing from a stolen table; a
256-bit random secret cannot be guessed at any hash speed, and a slow hash would cost tens of
milliseconds of CPU on every request instead of a microsecond.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.asgi import request_context
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.db.records import (
    ApiTokenRecord,
    AuditEventRecord,
    UserRecord,
    utcnow,
)
from streamspace.errors import Unauthenticated

PREFIX = "sst_"
SCOPES = ("read", "full")
READ_SCOPE = "read"
# last_used_at is written at most this often per token (cluster-wide): no write per request
LAST_USED_INTERVAL = timedelta(minutes=1)
# token.used goes to the audit trail at most this often per token, or sooner from a new address
USE_AUDIT_INTERVAL = timedelta(hours=1)
_ID = re.compile(r"^[0-9a-f]{16}$")

INVALID = "invalid API token"
REVOKED = "this API token was revoked"
EXPIRED = "this API token has expired"
ACCOUNT_DISABLED = "account is disabled or no longer exists"

log = logging.getLogger(__name__)

_CHECK = (
    select(
        ApiTokenRecord.secret_hash,
        ApiTokenRecord.name,
        ApiTokenRecord.scope,
        ApiTokenRecord.expires_at,
        ApiTokenRecord.revoked_at,
        ApiTokenRecord.last_used_at,
        ApiTokenRecord.last_used_address,
        ApiTokenRecord.use_audited_at,
        UserRecord.id,
        UserRecord.org_id,
        UserRecord.username,
        UserRecord.role,
        UserRecord.platform_admin,
        UserRecord.disabled,
        UserRecord.removed_at,
    )
    .join(UserRecord, UserRecord.id == ApiTokenRecord.user_id)
    .where(ApiTokenRecord.id == bindparam("token_id"))
)


def new_token() -> tuple[str, str]:
    """A fresh (id, token); the token is shown once and only its digest kept."""
    token_id = secrets.token_hex(8)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_api_token(token: str) -> bool:
    """An API token, not a login JWT (which starts with `ey`)."""
    return token.startswith(PREFIX)


def credential(token_id: str) -> str:
    """What `Principal.token_id` holds for a request made with this API token (`sst_<id>`):
    tickets and stream tokens issued under it name it, and its sockets close when it ends."""
    return PREFIX + token_id


def _parse(token: str) -> str:
    token_id, sep, secret = token.removeprefix(PREFIX).partition("_")
    if not sep or not secret or not _ID.match(token_id):
        raise Unauthenticated(INVALID, code="invalid_token")
    return token_id


class ApiTokenStore:
    """Checks API tokens against the database: one primary-key read per request, and a
    write at most once a minute per token (last use, and now and then a token.used event)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions, self._reads, self._now = sessions, reads, now

    async def principal(self, token: str) -> Principal:
        """Who the token speaks for, or Unauthenticated: `invalid_token` (malformed, unknown,
        wrong secret), `token_revoked`, `token_expired`, `account_disabled`."""
        token_id = _parse(token)
        row = await self._row(token_id)
        if row is None or not hmac.compare_digest(row.secret_hash, digest(token)):
            raise Unauthenticated(INVALID, code="invalid_token")
        principal = self._checked(row, token_id)
        await self._touch(row, token_id)
        return principal

    async def principal_by_id(self, credential_id: str) -> Principal:
        """The same checks but the secret's, for a ticket or stream token issued under the
        token (`sst_<id>`): its secret was checked when that was issued."""
        token_id = credential_id.removeprefix(PREFIX)
        row = await self._row(token_id)
        if row is None:
            raise Unauthenticated(REVOKED, code="token_revoked")
        return self._checked(row, token_id)

    async def _row(self, token_id: str) -> Any:
        async with self._reads() as db:
            return (await db.execute(_CHECK, {"token_id": token_id})).first()

    def _checked(self, row: Any, token_id: str) -> Principal:
        if row.revoked_at is not None:
            raise Unauthenticated(REVOKED, code="token_revoked")
        if row.expires_at <= self._now():
            raise Unauthenticated(EXPIRED, code="token_expired")
        if row.disabled or row.removed_at is not None:
            raise Unauthenticated(ACCOUNT_DISABLED, code="account_disabled")
        return Principal(
            user_id=row.id,
            org_id=row.org_id,
            username=row.username,
            role=row.role,
            token_id=credential(token_id),
            platform_admin=row.platform_admin,
            scope=row.scope,
        )

    async def _touch(self, row: Any, token_id: str) -> None:
        """Record the use if the last recorded one is a minute old. The UPDATE is conditional,
        so of replicas racing on the same token one writes; a failed write does not fail the
        request it was made for."""
        now = self._now()
        if row.last_used_at is not None and now - row.last_used_at < LAST_USED_INTERVAL:
            return
        address = request_context.client_address()
        audit = (
            row.use_audited_at is None
            or now - row.use_audited_at >= USE_AUDIT_INTERVAL
            or address != row.last_used_address
        )
        values: dict[str, Any] = {"last_used_at": now, "last_used_address": address}
        if audit:
            values["use_audited_at"] = now
        try:
            async with self._sessions.begin() as db:
                result = await db.execute(
                    update(ApiTokenRecord)
                    .where(
                        ApiTokenRecord.id == token_id,
                        or_(
                            ApiTokenRecord.last_used_at.is_(None),
                            ApiTokenRecord.last_used_at <= now - LAST_USED_INTERVAL,
                        ),
                    )
                    .values(**values)
                )
                if audit and getattr(result, "rowcount", 0) == 1:
                    db.add(
                        AuditEventRecord(
                            org_id=row.org_id,
                            actor=row.username,
                            action="token.used",
                            target=token_id,
                            detail={"token": row.name, "scope": row.scope, "address": address},
                        )
                    )
        except SQLAlchemyError as exc:
            log.warning("could not record the use of API token %s: %s", token_id, exc)
