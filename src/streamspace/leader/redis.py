"""Redis backend: `SET NX PX` on `streamspace:agent:leader:{agentId}`, for replicas on many hosts.

The key's value names the holder and epoch; the epoch comes from INCR on `...:{agentId}:epoch`.
Renew and release are Lua scripts that act only while the caller still holds the key (renew
also takes back a key that has vanished, as after a failover that lost the last write).
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from streamspace.config.redis_urls import parse_sentinel_url
from streamspace.leader.base import LeaderElector

# Atomic so that a failed attempt never burns an epoch: INCR only when the key is free.
# A missing counter starts at the server's unix time in microseconds (see base.epoch_seed).
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[2], string.format('%.0f', now[1] * 1000000 + now[2]))
end
local epoch = redis.call('INCR', KEYS[2])
-- cjson keeps 14 significant digits; the epoch (unix microseconds onward) needs all 16.
local value = '{"holder":' .. cjson.encode(ARGV[1]) .. ',"epoch":' .. string.format('%.0f', epoch) .. '}'
redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[2])
return {epoch, value}
"""
# A missing key is taken back with the same value: a Sentinel failover can promote a replica
# that never saw the holder's last write, and nobody else holds it. The epoch counter is
# raised to at least our epoch, so whoever acquires after us still gets a higher one.
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if held then return 0 end
local counter = redis.call('GET', KEYS[2])
if not counter or tonumber(counter) < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def leader_key(agent_id: str) -> str:
    """The key the guide tells operators to GET."""
    return f"streamspace:agent:leader:{agent_id}"


class RedisLeaderElector(LeaderElector):
    """Leadership = owning the leader key, whose TTL is the lease."""

    def __init__(
        self,
        *,
        agent_id: str,
        identity: str,
        lease_duration: float,
        client: Redis,
        sentinel: Sentinel | None = None,
    ) -> None:
        super().__init__(agent_id=agent_id, identity=identity, lease_duration=lease_duration)
        self._client, self._sentinel = client, sentinel
        self._key = leader_key(agent_id)
        self._epoch_key = f"{self._key}:epoch"
        self._value: str | None = None
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(
        cls, *, url: str, agent_id: str, identity: str, lease_duration: float
    ) -> RedisLeaderElector:
        """A client whose socket timeouts stay well inside one lease."""
        timeout = max(lease_duration / 3, 0.5)
        client, sentinel = _clients(url, timeout=timeout)
        return cls(
            agent_id=agent_id,
            identity=identity,
            lease_duration=lease_duration,
            client=client,
            sentinel=sentinel,
        )

    @property
    def _lease_ms(self) -> int:
        return max(int(self.lease_duration * 1000), 1)

    async def try_acquire(self) -> int | None:
        if self._value is not None and await self.renew():
            return _decode(self._value)[1]
        result: Any = await self._acquire(
            keys=[self._key, self._epoch_key], args=[self.identity, self._lease_ms]
        )
        if not result:
            return None
        epoch, value = int(result[0]), _text(result[1])
        self._value = value
        return epoch

    async def renew(self) -> bool:
        if self._value is None:
            return False
        renewed = await self._renew(
            keys=[self._key, self._epoch_key],
            args=[self._value, self._lease_ms, _decode(self._value)[1]],
        )
        if not renewed:
            self._value = None
        return bool(renewed)

    async def release(self) -> None:
        if self._value is None:
            return
        value, self._value = self._value, None
        await self._release(keys=[self._key], args=[value])

    async def current_holder(self) -> str | None:
        raw = await self._client.get(self._key)
        return None if raw is None else _decode(_text(raw))[0]

    async def close(self) -> None:
        await self._client.aclose()
        if self._sentinel is not None:  # Sentinel.aclose() is redis-py 8's; each client has one
            for client in self._sentinel.sentinels:
                await client.aclose()


def _clients(url: str, *, timeout: float) -> tuple[Redis, Sentinel | None]:
    """A plain URL's node, or (redis+sentinel://) the master the sentinels name, asked again
    on each reconnect; a demoted master's READONLY reply counts as a lost connection."""
    found = parse_sentinel_url(url)
    if found is None:
        return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout), None
    sockets = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(found.sentinels),
        sentinel_kwargs={**sockets, "password": found.sentinel_password},
        **sockets,
    )
    master: Redis = sentinel.master_for(
        found.master, db=found.db, username=found.username, password=found.password
    )
    return master, sentinel


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _decode(value: str) -> tuple[str, int]:
    data = json.loads(value)
    return str(data["holder"]), int(data["epoch"])
