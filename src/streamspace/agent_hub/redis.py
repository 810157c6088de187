"""Redis HubBackend (DB 1): agent->pod keys, replica keys and pub/sub, surviving Redis outages.

While Redis is unreachable the backend reports `multi_pod = False`: local work goes on, shared
operations fail fast with Unavailable, and a supervisor reconnects and resubscribes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streamspace.agent_hub.base import AGENT_KEY_TTL, Handler, HubBackend
from streamspace.errors import Unavailable

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""
_REFRESH = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
return 1
"""


def _keys(agent_id: str) -> tuple[str, str]:
    return f"agent:{agent_id}:pod", f"agent:{agent_id}:connected"


class RedisHubBackend(HubBackend):
    name = "redis"

    def __init__(self, *, url: str, pool_size: int, retry_interval: float = 1.0) -> None:
        # Blocking pool: a burst waits for a free connection instead of failing with "Too many
        # connections", which would flip the whole replica into single-pod mode.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size + 2,
            timeout=2.0,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=10,
        )
        self._client = aioredis.Redis(connection_pool=pool)
        self._url = url
        self._retry = retry_interval
        self._available = False
        self._task: asyncio.Task[None] | None = None
        self._release = self._client.register_script(_RELEASE)
        self._refresh = self._client.register_script(_REFRESH)

    @property
    def multi_pod(self) -> bool:
        return self._available

    async def start(
        self, *, channels: list[str], handler: Handler, on_connected: Callable[[], Awaitable[None]]
    ) -> None:
        self._task = asyncio.create_task(
            self._supervise(channels, handler, on_connected), name="agenthub-redis"
        )
        # Give a reachable Redis a moment, so a fresh replica starts in multi-pod mode.
        for _ in range(40):
            if self._available:
                break
            await asyncio.sleep(0.05)

    async def _supervise(
        self, channels: list[str], handler: Handler, on_connected: Callable[[], Awaitable[None]]
    ) -> None:
        warned = False
        while True:
            try:
                await self._listen(channels, handler, on_connected)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._available or not warned:
                    log.warning(
                        "AgentHub Redis unavailable (%s) - serving local agents only "
                        "(single-pod mode) until it is back",
                        exc,
                    )
                    warned = True
            except Exception:
                log.exception("AgentHub Redis listener crashed; restarting")
            self._available = False
            await asyncio.sleep(self._retry)

    async def _listen(
        self, channels: list[str], handler: Handler, on_connected: Callable[[], Awaitable[None]]
    ) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*channels)
            await self._client.ping()
            self._available = True
            log.info("AgentHub Redis connected - multi-pod support enabled")
            await on_connected()
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if not self._available:
                    await self._recover(on_connected)
                if message is None:
                    continue
                channel = message["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else channel
                try:
                    await handler(channel, message["data"])
                except Exception:
                    log.exception("AgentHub message handler failed on %s", channel)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _recover(self, on_connected: Callable[[], Awaitable[None]]) -> None:
        """A command failed but the subscription is alive: back to multi-pod once Redis
        answers again (raises, so the supervisor reconnects, if it does not)."""
        await self._client.ping()
        self._available = True
        log.info("AgentHub Redis answers again - multi-pod support re-enabled")
        await on_connected()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def _guard(self, what: str, op: Callable[[], Awaitable[object]]) -> object:
        if not self._available:
            raise Unavailable(f"Redis is unavailable; cannot {what}", code="redis_unavailable")
        try:
            return await op()
        except (RedisError, OSError) as exc:
            if self._available:
                log.warning(
                    "AgentHub Redis command failed (%s); single-pod mode until it answers", exc
                )
            self._available = False
            raise Unavailable(
                f"Redis is unavailable; cannot {what}: {exc}", code="redis_unavailable"
            ) from exc

    async def claim(self, *, agent_id: str, pod_name: str) -> None:
        await self.refresh(agent_id=agent_id, pod_name=pod_name)

    async def refresh(self, *, agent_id: str, pod_name: str) -> None:
        with contextlib.suppress(Unavailable):  # re-claimed by on_connected when Redis returns
            await self._guard(
                "record the agent's pod",
                lambda: self._refresh(keys=list(_keys(agent_id)), args=[pod_name, AGENT_KEY_TTL]),
            )

    async def refresh_many(self, *, agent_ids: list[str], pod_name: str) -> None:
        async def pipeline() -> object:
            async with self._client.pipeline(transaction=False) as pipe:
                for agent_id in agent_ids:
                    pod_key, connected_key = _keys(agent_id)
                    pipe.set(pod_key, pod_name, ex=AGENT_KEY_TTL)
                    pipe.set(connected_key, "1", ex=AGENT_KEY_TTL)
                return await pipe.execute()

        with contextlib.suppress(Unavailable):  # re-claimed by on_connected when Redis returns
            await self._guard("record the agents' pod", pipeline)

    async def release(self, *, agent_id: str, pod_name: str) -> bool:
        try:
            done = await self._guard(
                "release the agent's keys",
                lambda: self._release(keys=list(_keys(agent_id)), args=[pod_name]),
            )
        except Unavailable:
            return False  # the keys expire by themselves
        return bool(done)

    async def lookup(self, *, agent_id: str) -> str | None:
        value = await self._guard(
            "look up the agent's pod", lambda: self._client.get(_keys(agent_id)[0])
        )
        return value.decode() if isinstance(value, bytes) else None

    async def publish(self, *, channel: str, data: bytes) -> int:
        result = await self._guard("publish", lambda: self._client.publish(channel, data))
        assert isinstance(result, int)
        return result

    async def register_replica(self, *, pod_name: str, info: bytes, ttl: int) -> None:
        with contextlib.suppress(Unavailable):
            await self._guard(
                "register the replica",
                lambda: self._client.set(f"streamspace:replica:{pod_name}", info, ex=ttl),
            )

    async def replicas(self) -> dict[str, bytes]:
        async def scan() -> dict[str, bytes]:
            found: dict[str, bytes] = {}  # pod -> info
            async for key in self._client.scan_iter(match="streamspace:replica:*", count=200):
                value = await self._client.get(key)
                if isinstance(value, bytes):
                    name = key.decode() if isinstance(key, bytes) else str(key)
                    found[name.split(":", 2)[2]] = value
            return found

        result = await self._guard("list replicas", scan)
        assert isinstance(result, dict)
        return result

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False
