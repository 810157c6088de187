"""Server-side login sessions: a login token is valid only while its session is here.

Redis DB 0 when Redis is enabled, the database otherwise; either way every replica sees a
logout at once. `LoginSessionStore` is the contract; tests run it against both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime

import redis.asyncio as aioredis
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

    async def count_active(self, *, user_id: str) -> int:
        async with self._sessions() as db:
            rows = await db.scalars(
                select(LoginSessionRecord.id).where(
                    LoginSessionRecord.user_id == user_id, LoginSessionRecord.revoked.is_(False)
                )
            )
            return len(rows.all())


class RedisLoginSessionStore(LoginSessionStore):
    """Keys `login:{token_id}` -> user id (TTL = token lifetime); `login:user:{id}` indexes them."""

    backend = "redis"

    def __init__(self, *, client: aioredis.Redis) -> None:
        self._redis = client

    async def create(self, *, token_id: str, user_id: str, expires_at: float) -> None:
        ttl = max(int(expires_at - datetime.now(UTC).timestamp()), 1)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(f"login:{token_id}", user_id, ex=ttl)
            pipe.sadd(f"login:user:{user_id}", token_id)
            pipe.expire(f"login:user:{user_id}", ttl, gt=True)
            pipe.expire(f"login:user:{user_id}", ttl, nx=True)
            await pipe.execute()

    async def is_active(self, *, token_id: str) -> bool:
        return bool(await self._redis.exists(f"login:{token_id}"))

    async def revoke(self, *, token_id: str) -> None:
        await self._redis.delete(f"login:{token_id}")

    async def revoke_user(self, *, user_id: str) -> None:
        token_ids = await self._redis.smembers(f"login:user:{user_id}")
        keys = [f"login:{t.decode() if isinstance(t, bytes) else t}" for t in token_ids]
        await self._redis.delete(*keys, f"login:user:{user_id}")
