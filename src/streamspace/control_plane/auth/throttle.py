"""Login throttling per username and per client address: every attempt takes a slot of each
budget BEFORE its password is verified, atomically, so parallel guesses cannot outrun the count.

A budget is `max_failures` slots per key: failures recorded over `window`, plus attempts being
verified right now. Counted in Redis DB 0 when enabled (shared by all replicas, one Lua script
per step), else in this process (no await inside a step). It does not verify passwords.
"""

from __future__ import annotations

import contextlib
import math
import time
from abc import ABC, abstractmethod

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streamspace.errors import Unavailable

FAILURES, IN_FLIGHT = "loginfail:", "loginbusy:"
# An attempt's slot is given back when it ends; this bounds a slot lost with its replica.
IN_FLIGHT_TTL = 30

# KEYS: failure and in-flight key of each budget, in pairs; ARGV: budget, IN_FLIGHT_TTL. Refuses
# without taking anything when any budget is full (so an address already locked out cannot go
# on locking out every username it names): the wait is the failures' TTL when they alone fill
# it, else 1 s (attempts in flight end within moments). Otherwise takes a slot of each.
_RESERVE = """
local wait = 0
for i = 1, #KEYS, 2 do
  local failures = tonumber(redis.call('GET', KEYS[i]) or '0')
  local busy = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  if failures >= tonumber(ARGV[1]) then
    wait = math.max(wait, redis.call('TTL', KEYS[i]), 1)
  elseif failures + busy >= tonumber(ARGV[1]) then
    wait = math.max(wait, 1)
  end
end
if wait > 0 then return wait end
for i = 2, #KEYS, 2 do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 0
"""

# KEYS: as above; ARGV: 1 if the attempt failed, window. Frees each slot (never below zero: an
# expired key has nothing to free) and, for a failure, counts it from the window's first one.
_SETTLE = """
for i = 1, #KEYS, 2 do
  if tonumber(redis.call('GET', KEYS[i + 1]) or '0') > 0 then redis.call('DECR', KEYS[i + 1]) end
  if ARGV[1] == '1' then
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], ARGV[2], 'NX')
  end
end
return 0
"""


def user_key(username: str) -> str:
    """The username's budget: case-folded, so `Admin` and `admin` share one."""
    return f"user:{username.lower()}"


def address_key(address: str) -> str:
    return f"ip:{address}"


class LoginThrottle(ABC):
    """Budgets of `max_failures` slots per key; failures hold theirs for `window` seconds from
    the key's first failure."""

    def __init__(self, *, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window

    @abstractmethod
    async def reserve(self, *, keys: list[str]) -> int:
        """Take a slot of every key's budget and return 0; or, when any budget is full, take
        none and return the seconds after which to try again."""

    @abstractmethod
    async def settle(self, *, keys: list[str], failed: bool) -> None:
        """End an attempt `reserve` let through: free its slots, and count it if it failed."""

    @abstractmethod
    async def reset(self, *, keys: list[str]) -> None:
        """Forget the keys' failures (a successful login); best effort."""

    async def clear(self, *, keys: list[str]) -> None:
        """An admin clearing a lockout: forget the keys' failures everywhere they are kept,
        or raise Unavailable (the admin must hear that it did not happen)."""
        await self.reset(keys=keys)


class MemoryLoginThrottle(LoginThrottle):
    """This process's counters; each method runs without awaiting, so it is atomic here."""

    def __init__(self, *, max_failures: int, window: float) -> None:
        super().__init__(max_failures=max_failures, window=window)
        self._failures: dict[str, tuple[int, float]] = {}
        self._busy: dict[str, int] = {}

    def _live(self, key: str) -> tuple[int, float]:
        count, until = self._failures.get(key, (0, 0.0))
        if until <= time.monotonic():
            self._failures.pop(key, None)
            return 0, 0.0
        return count, until

    def _wait(self, key: str) -> float:
        failures, until = self._live(key)
        if failures >= self.max_failures:
            return max(until - time.monotonic(), 1.0)
        return 1.0 if failures + self._busy.get(key, 0) >= self.max_failures else 0.0

    async def reserve(self, *, keys: list[str]) -> int:
        wait = max(map(self._wait, keys), default=0.0)
        if wait:
            return math.ceil(wait)
        for key in keys:
            self._busy[key] = self._busy.get(key, 0) + 1
        return 0

    async def settle(self, *, keys: list[str], failed: bool) -> None:
        for key in keys:
            busy = self._busy.pop(key, 0) - 1
            if busy > 0:
                self._busy[key] = busy
            if failed:
                count, until = self._live(key)
                self._failures[key] = (count + 1, until or time.monotonic() + self.window)
        if len(self._failures) > 100_000:  # bound memory under a credential-stuffing flood
            for key in list(self._failures)[:50_000]:
                self._live(key)

    async def reset(self, *, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)


class RedisLoginThrottle(LoginThrottle):
    """Shared counters in Redis; this replica's own counters while Redis is unreachable."""

    def __init__(self, *, client: aioredis.Redis, max_failures: int, window: float) -> None:
        super().__init__(max_failures=max_failures, window=window)
        self._redis = client
        self._local = MemoryLoginThrottle(max_failures=max_failures, window=window)
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        # attempts whose slots were taken here while Redis was unreachable, by key set: each is
        # given back here, not in Redis (which would free another attempt's slot), even if
        # Redis answers again before it ends
        self._held_here: dict[tuple[str, ...], int] = {}

    @staticmethod
    def _pairs(keys: list[str]) -> list[str]:
        return [name for key in keys for name in (FAILURES + key, IN_FLIGHT + key)]

    async def reserve(self, *, keys: list[str]) -> int:
        try:
            wait = await self._reserve(
                keys=self._pairs(keys), args=[self.max_failures, IN_FLIGHT_TTL]
            )
        except (RedisError, OSError):
            wait = await self._local.reserve(keys=keys)
            if not wait:
                self._held_here[tuple(keys)] = self._held_here.get(tuple(keys), 0) + 1
            return wait
        return int(wait)

    async def settle(self, *, keys: list[str], failed: bool) -> None:
        held = self._held_here.pop(tuple(keys), 0)
        if held:
            if held > 1:
                self._held_here[tuple(keys)] = held - 1
            await self._local.settle(keys=keys, failed=failed)
            return
        window = max(1, math.ceil(self.window))
        try:
            await self._settle(keys=self._pairs(keys), args=[int(failed), window])
        except (RedisError, OSError):
            await self._local.settle(keys=keys, failed=failed)

    async def reset(self, *, keys: list[str]) -> None:
        await self._local.reset(keys=keys)
        with contextlib.suppress(Unavailable):
            await self.reset_shared(keys=keys)

    async def clear(self, *, keys: list[str]) -> None:
        await self._local.reset(keys=keys)
        await self.reset_shared(keys=keys)

    async def reset_shared(self, *, keys: list[str]) -> None:
        """Forget the keys' shared failures; Unavailable when Redis cannot be reached."""
        try:
            await self._redis.delete(*(FAILURES + k for k in keys))
        except (RedisError, OSError) as exc:
            raise Unavailable(f"Redis unreachable: {exc}") from exc
