"""Failed-login throttling per username and per client address (429 with Retry-After).

Counted in Redis DB 0 when enabled (shared by all replicas), else in this process.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod

import redis.asyncio as aioredis
from redis.exceptions import RedisError


class LoginThrottle(ABC):
    def __init__(self, *, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window

    @abstractmethod
    async def retry_after(self, *, keys: list[str]) -> int:
        """Seconds to wait if any key is over the limit, else 0."""

    @abstractmethod
    async def record_failure(self, *, keys: list[str]) -> None: ...

    @abstractmethod
    async def reset(self, *, keys: list[str]) -> None: ...


class MemoryLoginThrottle(LoginThrottle):
    def __init__(self, *, max_failures: int, window: float) -> None:
        super().__init__(max_failures=max_failures, window=window)
        self._counts: dict[str, tuple[int, float]] = {}

    def _live(self, key: str) -> tuple[int, float]:
        count, until = self._counts.get(key, (0, 0.0))
        if until <= time.monotonic():
            self._counts.pop(key, None)
            return 0, 0.0
        return count, until

    async def retry_after(self, *, keys: list[str]) -> int:
        waits = [
            until - time.monotonic()
            for count, until in map(self._live, keys)
            if count >= self.max_failures
        ]
        return max((int(w) + 1 for w in waits), default=0)

    async def record_failure(self, *, keys: list[str]) -> None:
        for key in keys:
            count, until = self._live(key)
            self._counts[key] = (count + 1, until or time.monotonic() + self.window)
        if len(self._counts) > 100_000:  # bound memory under a credential-stuffing flood
            for key in list(self._counts)[:50_000]:
                self._live(key)

    async def reset(self, *, keys: list[str]) -> None:
        for key in keys:
            self._counts.pop(key, None)


class RedisLoginThrottle(LoginThrottle):
    """Shared counters in Redis; this replica's own counters while Redis is unreachable."""

    def __init__(self, *, client: aioredis.Redis, max_failures: int, window: float) -> None:
        super().__init__(max_failures=max_failures, window=window)
        self._redis = client
        self._local = MemoryLoginThrottle(max_failures=max_failures, window=window)

    async def retry_after(self, *, keys: list[str]) -> int:
        try:
            return await self._shared_retry_after(keys)
        except (RedisError, OSError):
            return await self._local.retry_after(keys=keys)

    async def record_failure(self, *, keys: list[str]) -> None:
        try:
            await self._shared_record(keys)
        except (RedisError, OSError):
            await self._local.record_failure(keys=keys)

    async def reset(self, *, keys: list[str]) -> None:
        await self._local.reset(keys=keys)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(*(f"loginfail:{k}" for k in keys))

    async def _shared_retry_after(self, keys: list[str]) -> int:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(f"loginfail:{key}")
                pipe.ttl(f"loginfail:{key}")
            values = await pipe.execute()
        waits = [
            max(int(ttl), 1)
            for count, ttl in zip(values[::2], values[1::2], strict=True)
            if count is not None and int(count) >= self.max_failures
        ]
        return max(waits, default=0)

    async def _shared_record(self, keys: list[str]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.incr(f"loginfail:{key}")
                pipe.expire(f"loginfail:{key}", int(self.window), nx=True)
            await pipe.execute()
