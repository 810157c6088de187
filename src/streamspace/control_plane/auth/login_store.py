"""Server-side login sessions: a login token is valid only while its session is here.

Redis DB 0 when Redis is enabled, the database otherwise; either way every replica sees a
logout at once. `LoginSessionStore` is the contract; tests run it against both.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import LoginSessionRecord


class LoginSessionStore(ABC):
    backend: str

    @abstractmethod
    async def create(self, *, token_id: str, user_id: str, expires_at: float) -> None: ...

    @abstractmethod
    async def is_active(self, *, token_id: str) -> bool: ...

    @abstractmethod
    async def revoke(self, *, token_id: str) -> None: ...

    @abstractmethod
    async def revoke_user(self, *, user_id: str) -> None:
        """End every login of a user (disabled, password changed)."""


class DatabaseLoginSessionStore(LoginSessionStore):
    backend = "database"

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(self, *, token_id: str, user_id: str, expires_at: float) -> None:
        async with self._sessions.begin() as db:
            db.add(
                LoginSessionRecord(
                    id=token_id, user_id=user_id, expires_at=datetime.fromtimestamp(expires_at, UTC)
                )
            )
            await db.execute(
                delete(LoginSessionRecord).where(LoginSessionRecord.expires_at < datetime.now(UTC))
            )

    async def is_active(self, *, token_id: str) -> bool:
        async with self._sessions() as db:
            row = await db.get(LoginSessionRecord, token_id)
            return row is not None and not row.revoked and row.expires_at > datetime.now(UTC)

    async def revoke(self, *, token_id: str) -> None:
        async with self._sessions.begin() as db:
            await db.execute(
                update(LoginSessionRecord)
                .where(LoginSessionRecord.id == token_id)
                .values(revoked=True)
            )

    async def revoke_user(self, *, user_id: str) -> None:
        async with self._sessions.begin() as db:
            await db.execute(
                update(LoginSessionRecord)
                .where(LoginSessionRecord.user_id == user_id)
                .values(revoked=True)
            )

    async def token_ids(self, *, user_id: str) -> list[str]:
        async with self._sessions() as db:
            rows = await db.scalars(
                select(LoginSessionRecord.id).where(
                    LoginSessionRecord.user_id == user_id, LoginSessionRecord.revoked.is_(False)
                )
            )
            return list(rows.all())


class RedisLoginSessionStore(LoginSessionStore):
    """Redis DB 0 in front of the database: `login:{token_id}` marks a live login (short TTL),
    the database stays the source of truth. A logout deletes the key at once, so every
    replica sees it; while Redis is down checks fall back to the database instead of
    locking everybody out (the original's global-401 defect)."""

    backend = "redis"

    def __init__(
        self, *, client: aioredis.Redis, database: DatabaseLoginSessionStore, cache_ttl: int = 60
    ) -> None:
        self._redis = client
        self._db = database
        self._ttl = cache_ttl

    async def create(self, *, token_id: str, user_id: str, expires_at: float) -> None:
        await self._db.create(token_id=token_id, user_id=user_id, expires_at=expires_at)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.set(f"login:{token_id}", user_id, ex=self._ttl)

    async def is_active(self, *, token_id: str) -> bool:
        try:
            if await self._redis.exists(f"login:{token_id}"):
                return True
        except (RedisError, OSError):
            return await self._db.is_active(token_id=token_id)
        active = await self._db.is_active(token_id=token_id)
        if active:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.set(f"login:{token_id}", "1", ex=self._ttl)
        return active

    async def revoke(self, *, token_id: str) -> None:
        await self._db.revoke(token_id=token_id)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(f"login:{token_id}")

    async def revoke_user(self, *, user_id: str) -> None:
        token_ids = await self._db.token_ids(user_id=user_id)
        await self._db.revoke_user(user_id=user_id)
        if token_ids:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.delete(*(f"login:{t}" for t in token_ids))
