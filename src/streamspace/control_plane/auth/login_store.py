"""Server-side login sessions: a login token is valid only while its session is here.

Redis DB 0 when Redis is enabled, the database otherwise (one replica: the live logins'
principals are then cached in the process); either way every replica sees a logout at once.
`LoginSessionStore` is the contract; tests run it against both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from abc import ABC, abstractmethod
from dataclasses import asdict
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.db.records import LoginSessionRecord, UserRecord
from streamspace.errors import Unauthenticated

SESSION_ENDED = "session has ended; log in again"
ACCOUNT_DISABLED = "account is disabled or no longer exists"


_PRINCIPAL = (
    select(
        LoginSessionRecord.revoked,
        LoginSessionRecord.expires_at,
        UserRecord.id,
        UserRecord.org_id,
        UserRecord.username,
        UserRecord.role,
        UserRecord.platform_admin,
        UserRecord.disabled,
    )
    .join(UserRecord, UserRecord.id == LoginSessionRecord.user_id)
    .where(LoginSessionRecord.id == bindparam("token_id"))
)


class LoginSessionStore(ABC):
    backend: str

    @abstractmethod
    async def create(self, *, token_id: str, user_id: str, expires_at: float) -> None: ...

    @abstractmethod
    async def principal(self, *, token_id: str) -> Principal:
        """Who a live login is: raises Unauthenticated (`session_revoked` or
        `account_disabled`) when the login ended or its user may no longer sign in. On the
        hot path of every request, so one lookup: one query, or one Redis read."""

    @abstractmethod
    async def revoke(self, *, token_id: str) -> None: ...

    @abstractmethod
    async def revoke_user(self, *, user_id: str, keep: str | None = None) -> None:
        """End every login of a user (disabled, password changed), but `keep` (the login
        that changed its own password)."""

    async def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Stop background work (at shutdown)."""

    async def refresh_user(self, *, user_id: str) -> None:  # noqa: B027 - a no-op by default
        """The user's role or name changed: logins stay, cached principals go (the database
        store caches nothing, so nothing to do there)."""


class DatabaseLoginSessionStore(LoginSessionStore):
    backend = "database"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
    ) -> None:
        self._sessions, self._reads = sessions, reads

    async def create(self, *, token_id: str, user_id: str, expires_at: float) -> None:
        async with self._sessions.begin() as db:
            db.add(
                LoginSessionRecord(
                    id=token_id, user_id=user_id, expires_at=datetime.fromtimestamp(expires_at, UTC)
                )
            )

    async def principal(self, *, token_id: str) -> Principal:
        # Core, not the ORM, one prebuilt statement: this runs on every authenticated request.
        async with self._reads() as db:
            row = (await db.execute(_PRINCIPAL, {"token_id": token_id})).first()
        if row is None or row.revoked or row.expires_at <= datetime.now(UTC):
            raise Unauthenticated(SESSION_ENDED, code="session_revoked")
        if row.disabled:
            raise Unauthenticated(ACCOUNT_DISABLED, code="account_disabled")
        return Principal(
            user_id=row.id,
            org_id=row.org_id,
            username=row.username,
            role=row.role,
            token_id=token_id,
            platform_admin=row.platform_admin,
        )

    async def revoke(self, *, token_id: str) -> None:
        async with self._sessions.begin() as db:
            await db.execute(
                update(LoginSessionRecord)
                .where(LoginSessionRecord.id == token_id)
                .values(revoked=True)
            )

    async def revoke_user(self, *, user_id: str, keep: str | None = None) -> None:
        async with self._sessions.begin() as db:
            await db.execute(
                update(LoginSessionRecord)
                .where(LoginSessionRecord.user_id == user_id, LoginSessionRecord.id != (keep or ""))
                .values(revoked=True)
            )

    async def token_ids(self, *, user_id: str) -> list[str]:
        async with self._reads() as db:
            rows = await db.scalars(
                select(LoginSessionRecord.id).where(
                    LoginSessionRecord.user_id == user_id, LoginSessionRecord.revoked.is_(False)
                )
            )
            return list(rows.all())


def _login_key(token_id: str) -> str:
    return f"login:{token_id}"


class RedisLoginSessionStore(LoginSessionStore):
    """Redis DB 0 in front of the database: `login:{token_id}` holds a live login's principal
    (short TTL), so a request is checked with one Redis read; the database stays the source
    of truth. While Redis is down checks fall back to the database instead of locking
    everybody out (the original's global-401 defect).

    A logout does not delete the key, it overwrites it with a tombstone, and a check only
    fills an absent key (SET NX): a check that read the database just before the logout
    committed can then no longer put the ended login back for a whole TTL on every replica.
    A role change leaves a `stale` marker the same way: checks read the database until it
    expires, and no check can re-cache the old role. A marker Redis did not take (it was down
    or unreachable) is kept and written again every RETRY_INTERVAL until it is: Redis may come
    back holding a principal cached before the outage, and must not serve it."""

    backend = "redis"
    REVOKED = b"-revoked"
    STALE = b"-stale"
    RETRY_INTERVAL = 0.5

    def __init__(
        self, *, client: aioredis.Redis, database: DatabaseLoginSessionStore, cache_ttl: int = 60
    ) -> None:
        self._redis = client
        self._db = database
        self._ttl = cache_ttl
        self._unwritten: dict[str, bytes] = {}  # token id -> marker Redis has not taken yet
        self._retrying: asyncio.Task[None] | None = None

    async def create(self, *, token_id: str, user_id: str, expires_at: float) -> None:
        await self._db.create(token_id=token_id, user_id=user_id, expires_at=expires_at)

    async def principal(self, *, token_id: str) -> Principal:
        key = _login_key(token_id)
        # A marker Redis has not taken yet is this replica's newest word on the login: no need
        # to ask Redis (which may be the reason it is not written).
        cached: bytes | str | None = self._unwritten.get(token_id)
        if cached is None:
            try:
                cached = await self._redis.get(key)
            except (RedisError, OSError):
                return await self._db.principal(token_id=token_id)
        if cached == self.REVOKED:
            raise Unauthenticated(SESSION_ENDED, code="session_revoked")
        if cached and cached != self.STALE:
            with contextlib.suppress(ValueError, TypeError):
                return Principal(**json.loads(cached))
        principal = await self._db.principal(token_id=token_id)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.set(key, json.dumps(asdict(principal)), ex=self._ttl, nx=True)
        return principal

    async def revoke(self, *, token_id: str) -> None:
        await self._db.revoke(token_id=token_id)
        await self._mark([token_id], self.REVOKED)

    async def revoke_user(self, *, user_id: str, keep: str | None = None) -> None:
        token_ids = [t for t in await self._db.token_ids(user_id=user_id) if t != keep]
        await self._db.revoke_user(user_id=user_id, keep=keep)
        await self._mark(token_ids, self.REVOKED)

    async def refresh_user(self, *, user_id: str) -> None:
        await self._mark(await self._db.token_ids(user_id=user_id), self.STALE)

    async def _mark(self, token_ids: list[str], marker: bytes) -> None:
        """Overwrite the cached principals (after the database changed): a check still in
        flight cannot fill them again before the marker expires."""
        for token_id in token_ids:
            if self._unwritten.get(token_id) != self.REVOKED:  # an ended login stays ended
                self._unwritten[token_id] = marker
        if not await self._write_markers():
            self._retry_later()

    async def _write_markers(self) -> bool:
        """True when Redis has taken every marker."""
        batch = dict(self._unwritten)
        if not batch:
            return True
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for token_id, marker in batch.items():
                    pipe.set(_login_key(token_id), marker, ex=self._ttl)
                await pipe.execute()
        except (RedisError, OSError):
            return False
        for token_id, marker in batch.items():
            if self._unwritten.get(token_id) == marker:
                del self._unwritten[token_id]
        return not self._unwritten

    def _retry_later(self) -> None:
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(self.RETRY_INTERVAL)
            if await self._write_markers():
                return

    async def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying


class CachingLoginSessionStore(LoginSessionStore):
    """The database store with the principals of live logins kept in this process, for the
    one-replica deployments (no Redis; multi-pod needs Redis, per the guide). Every logout,
    disable and role change goes through this process and drops its entries at once, and a
    check whose database read began before such a change does not cache what it read; `ttl`
    only bounds how long a change made behind its back (straight in the database) can go
    unseen."""

    def __init__(
        self, *, database: DatabaseLoginSessionStore, ttl: float = 5.0, limit: int = 100_000
    ) -> None:
        self.backend = database.backend
        self._db = database
        self._ttl = ttl
        self._limit = limit
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._changes = 0  # logouts, disables and role changes so far

    async def create(self, *, token_id: str, user_id: str, expires_at: float) -> None:
        await self._db.create(token_id=token_id, user_id=user_id, expires_at=expires_at)

    async def principal(self, *, token_id: str) -> Principal:
        entry = self._entries.get(token_id)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        changes = self._changes
        principal = await self._db.principal(token_id=token_id)
        if changes != self._changes:  # a logout or user change ran meanwhile: may be stale
            return principal
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[token_id] = (time.monotonic() + self._ttl, principal)
        return principal

    # The database first, then the cache: a check that read the database before the change
    # sees the counter moved and keeps its answer to itself.

    async def revoke(self, *, token_id: str) -> None:
        await self._db.revoke(token_id=token_id)
        self._changes += 1
        self._entries.pop(token_id, None)

    async def revoke_user(self, *, user_id: str, keep: str | None = None) -> None:
        await self._db.revoke_user(user_id=user_id, keep=keep)
        self._drop_user(user_id)

    async def refresh_user(self, *, user_id: str) -> None:
        self._drop_user(user_id)

    def _drop_user(self, user_id: str) -> None:
        self._changes += 1
        for token_id in [t for t, (_, p) in self._entries.items() if p.user_id == user_id]:
            del self._entries[token_id]


async def login_ended(store: LoginSessionStore, login_id: str) -> str | None:
    """Why a login can no longer be used (it was revoked or expired, its user disabled or
    removed), or None while it is live; a database outage raises."""
    try:
        await store.principal(token_id=login_id)
    except Unauthenticated as exc:
        return exc.message
    return None
