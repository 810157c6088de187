"""Login throttling per username and per client address: every attempt reserves one unit of each
budget BEFORE its password is verified, atomically, so parallel guesses cannot outrun the count.

Counted in Redis DB 0 when enabled (shared by all replicas, one Lua script per attempt), else in
this process (no await between the check and the count). It does not verify passwords.
"""

from __future__ import annotations

import contextlib
import math
import time
from abc import ABC, abstractmethod

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streamspace.errors import Unavailable

PREFIX = "loginfail:"

# KEYS: the budgets; ARGV: budget, window (s). Refuses without counting when any key is spent
# (so a refused attempt does not spend the other keys' budgets: an address already locked out
# cannot go on locking out every username it names); else takes one unit of each.
_RESERVE = """
local wait = 0
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 1 then ttl = 1 end
    if ttl > wait then wait = ttl end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[2], 'NX')
end
return 0
"""

# Gives back one unit of each key that still holds one (an expired key has nothing to give back).
_RELEASE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 0
"""


def user_key(username: str) -> str:
    """The username's budget: case-folded, so `Admin` and `admin` share one."""
    return f"user:{username.lower()}"


def address_key(address: str) -> str:
    return f"ip:{address}"


class LoginThrottle(ABC):
    """Budgets of `max_failures` attempts per key over `window` seconds, from the first one."""

    def __init__(self, *, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window

    @abstractmethod
    async def reserve(self, *, keys: list[str]) -> int:
        """Take one unit of every key's budget and return 0; or, when any budget is spent, take
        none and return the seconds until the longest-locked of them frees up."""

    @abstractmethod
    async def release(self, *, keys: list[str]) -> None:
        """Give back a unit taken by `reserve` (an attempt that did not count as a failure)."""

    @abstractmethod
    async def reset(self, *, keys: list[str]) -> None:
        """Forget the keys' counts (a successful login, an admin clearing a lockout)."""


class MemoryLoginThrottle(LoginThrottle):
    """This process's counters; each method runs without awaiting, so it is atomic here."""

    def __init__(self, *, max_failures: int, window: float) -> None:
        super().__init__(max_failures=max_failures, window=window)
        self._counts: dict[str, tuple[int, float]] = {}

    def _live(self, key: str) -> tuple[int, float]:
        count, until = self._counts.get(key, (0, 0.0))
        if until <= time.monotonic():
            self._counts.pop(key, None)
            return 0, 0.0
        return count, until

    async def reserve(self, *, keys: list[str]) -> int:
        now = time.monotonic()
        waits = [
            until - now for count, until in map(self._live, keys) if count >= self.max_failures
        ]
        if waits:
            return max(int(w) + 1 for w in waits)
        for key in keys:
            count, until = self._live(key)
            self._counts[key] = (count + 1, until or now + self.window)
        if len(self._counts) > 100_000:  # bound memory under a credential-stuffing flood
            for key in list(self._counts)[:50_000]:
                self._live(key)
        return 0

    async def release(self, *, keys: list[str]) -> None:
        for key in keys:
            count, until = self._live(key)
            if count > 0:
                self._counts[key] = (count - 1, until)

    async def reset(self, *, keys: list[str]) -> None:
        for key in keys:
            self._counts.pop(key, None)


class RedisLoginThrottle(LoginThrottle):
    """Shared counters in Redis; this replica's own counters while Redis is unreachable."""

    def __init__(self, *, client: aioredis.Redis, max_failures: int, window: float) -> None:
        super().__init__(max_failures=max_failures, window=window)
        self._redis = client
        self._local = MemoryLoginThrottle(max_failures=max_failures, window=window)
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    async def reserve(self, *, keys: list[str]) -> int:
        try:
            wait = await self._reserve(
                keys=[PREFIX + k for k in keys],
                args=[self.max_failures, max(1, math.ceil(self.window))],
            )
        except (RedisError, OSError):
            return await self._local.reserve(keys=keys)
        return int(wait)

    async def release(self, *, keys: list[str]) -> None:
        try:
            await self._release(keys=[PREFIX + k for k in keys])
        except (RedisError, OSError):
            await self._local.release(keys=keys)

    async def reset(self, *, keys: list[str]) -> None:
        await self._local.reset(keys=keys)
        with contextlib.suppress(Unavailable):
            await self.reset_shared(keys=keys)

    async def reset_shared(self, *, keys: list[str]) -> None:
        """Forget the keys' shared counts; Unavailable when Redis cannot be reached."""
        try:
            await self._redis.delete(*(PREFIX + k for k in keys))
        except (RedisError, OSError) as exc:
            raise Unavailable(f"Redis unreachable: {exc}") from exc
