"""Redis HubBackend (DB 1): agent->pod keys, replica keys and pub/sub, surviving Redis outages.

While Redis is unreachable the backend reports `multi_pod = False`: local work goes on, shared
operations fail fast with Unavailable, and a supervisor reconnects and resubscribes by itself.

Lookups and publishes issued in the same loop turn are coalesced (coalesce.py): one MGET for
the lookups, one pipeline for the publishes, and several messages for one channel travel as one
batch frame (`BATCH_MAGIC`, then each message as a 4-byte big-endian length and its bytes),
which the listener splits again before the handler sees them. Those three (MGET, PUBLISH and
the subscription) run over resp.py's lean connections (`lean=False`: over redis-py, through
redispy.py); the rest uses redis-py. Every connection
finds its node through discovery.py, so with Sentinel each reconnect follows the master.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable, Iterator

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from streamspace.agent_hub.base import AGENT_KEY_TTL, Handler, HubBackend
from streamspace.agent_hub.coalesce import Coalescer
from streamspace.agent_hub.discovery import RedisTarget, pooled_client, resolver
from streamspace.agent_hub.redispy import (
    CommandClient,
    PooledCommands,
    PubSubSubscriber,
    Subscriber,
)
from streamspace.agent_hub.resp import Arg, RespClient, RespSubscriber
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


def replica_key(pod_name: str) -> str:
    """A replica's internal address (peers dial it to relay viewer streams), with a TTL."""
    return f"streamspace:replica:{pod_name}"


BATCH_MAGIC = b"\x00ssbatch1"
_LENGTH = struct.Struct(">I")


def pack_batch(messages: list[bytes]) -> bytes:
    return BATCH_MAGIC + b"".join(_LENGTH.pack(len(m)) + m for m in messages)


def unpack(data: bytes) -> Iterator[bytes]:
    """The messages in one pub/sub payload: itself, or each message of a batch frame."""
    if not data.startswith(BATCH_MAGIC):
        yield data
        return
    view, at = memoryview(data), len(BATCH_MAGIC)
    while at < len(data):
        (size,) = _LENGTH.unpack_from(view, at)
        at += _LENGTH.size
        yield bytes(view[at : at + size])
        at += size


class RedisHubBackend(HubBackend):
    name = "redis"
    shared = True

    def __init__(
        self,
        *,
        target: RedisTarget,
        pool_size: int,
        retry_interval: float = 1.0,
        health_interval: float = 10.0,
        lean: bool = True,
    ) -> None:
        # A burst waits for a free connection instead of failing with "Too many connections",
        # which would flip the whole replica into single-pod mode.
        self._resolve = resolver(target)
        self._client = pooled_client(
            target,
            max_connections=pool_size,
            health_check_interval=10,
            resolve=self._resolve if target.sentinels else None,  # one resolver, one log line
        )
        self._target, self._lean = target, lean
        self._fast: CommandClient = (
            RespClient(self._resolve, timeout=2.0) if lean else PooledCommands(self._client)
        )
        self._health = health_interval
        self._retry = retry_interval
        self._available = False
        self._task: asyncio.Task[None] | None = None
        self._release = self._client.register_script(_RELEASE)
        self._refresh = self._client.register_script(_REFRESH)
        self._lookups: Coalescer[str, str | None] = Coalescer(self._lookup_many)
        self._publishes: Coalescer[tuple[str, bytes], int] = Coalescer(self._publish_many)

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
        subscriber: Subscriber = (
            RespSubscriber(self._resolve, channels, timeout=2.0, health_interval=self._health)
            if self._lean
            else PubSubSubscriber(self._target, self._resolve, channels, health=self._health)
        )
        try:
            await subscriber.connect()
            await self._client.ping()
            self._available = True
            log.info("AgentHub Redis connected - multi-pod support enabled")
            await on_connected()
            while True:
                message = await subscriber.get(wait=1.0)
                if not self._available:
                    await self._recover(on_connected, subscriber)
                if message is None:
                    continue
                channel = message[0].decode()
                for data in unpack(message[1]):
                    try:
                        await handler(channel, data)
                    except Exception:
                        log.exception("AgentHub message handler failed on %s", channel)
        finally:
            await subscriber.close()

    async def _recover(
        self, on_connected: Callable[[], Awaitable[None]], subscriber: Subscriber
    ) -> None:
        """A command failed but the subscription is alive: back to multi-pod once Redis
        answers again, on the node subscribed to (raises, so the supervisor reconnects and
        resubscribes, if it does not, or if the master has moved elsewhere meanwhile)."""
        if await self._resolve() != subscriber.address:
            raise RedisConnectionError("the Redis master has moved; resubscribing there")
        await self._client.ping()
        self._available = True
        log.info("AgentHub Redis answers again - multi-pod support re-enabled")
        await on_connected()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._fast.close()
        await self._client.aclose()

    async def _guard(self, what: str, op: Callable[[], Awaitable[object]]) -> object:
        if not self._available:
            raise Unavailable(f"Redis is unavailable; cannot {what}", code="redis_unavailable")
        try:
            return await op()
        except RedisConnectionError as exc:
            if "No connection available" not in str(exc):
                raise self._lost(what, exc) from exc
            # Every pooled connection busy for the whole wait: this replica is overloaded, Redis
            # is not down; fail this call only, stay in multi-pod mode.
            raise Unavailable(
                f"Redis connections all busy; cannot {what} now", code="redis_busy"
            ) from exc
        except (RedisError, OSError) as exc:
            raise self._lost(what, exc) from exc

    def _lost(self, what: str, exc: Exception) -> Unavailable:
        if self._available:
            log.warning("AgentHub Redis command failed (%s); single-pod mode until it answers", exc)
        self._available = False
        return Unavailable(f"Redis is unavailable; cannot {what}: {exc}", code="redis_unavailable")

    async def claim(self, *, agent_id: str, pod_name: str) -> None:
        await self.refresh(agent_id=agent_id, pod_name=pod_name)

    async def refresh(self, *, agent_id: str, pod_name: str) -> None:
        with contextlib.suppress(Unavailable):  # re-claimed by on_connected when Redis returns
            await self._guard(
                "record the agent's pod",
                lambda: self._refresh(keys=list(_keys(agent_id)), args=[pod_name, AGENT_KEY_TTL]),
            )

    async def refresh_many(self, *, agent_ids: list[str], pod_name: str) -> None:
        """Two SETs per agent in one write on the lean connection (redis-py's pipeline cost
        about as much CPU per command as the heartbeat it refreshes)."""
        commands: list[tuple[Arg, ...]] = []
        for agent_id in agent_ids:
            pod_key, connected_key = _keys(agent_id)
            commands.append(("SET", pod_key, pod_name, "EX", AGENT_KEY_TTL))
            commands.append(("SET", connected_key, "1", "EX", AGENT_KEY_TTL))
        with contextlib.suppress(Unavailable):  # re-claimed by on_connected when Redis returns
            await self._guard("record the agents' pod", lambda: self._fast.pipeline(commands))

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
        return await self._lookups(agent_id)

    async def _lookup_many(self, agent_ids: list[str]) -> list[str | None]:
        keys = [_keys(agent_id)[0] for agent_id in agent_ids]
        values = await self._guard(
            "look up the agent's pod", lambda: self._fast.call("MGET", *keys)
        )
        assert isinstance(values, list)
        return [v.decode() if isinstance(v, bytes) else None for v in values]

    async def publish(self, *, channel: str, data: bytes) -> int:
        return await self._publishes((channel, data))

    async def _publish_many(self, items: list[tuple[str, bytes]]) -> list[int]:
        """One pipeline; several messages for one channel go as one batch frame. Each caller
        gets the receiver count of the PUBLISH that carried its message."""
        by_channel: dict[str, list[bytes]] = {}
        for channel, data in items:
            by_channel.setdefault(channel, []).append(data)

        counts = await self._guard(
            "publish",
            lambda: self._fast.pipeline(
                [
                    (
                        "PUBLISH",
                        channel,
                        messages[0] if len(messages) == 1 else pack_batch(messages),
                    )
                    for channel, messages in by_channel.items()
                ]
            ),
        )
        assert isinstance(counts, list)
        receivers = dict(zip(by_channel, counts, strict=True))
        return [int(receivers[channel]) for channel, _ in items]

    async def register_replica(self, *, pod_name: str, address: str, ttl: int) -> None:
        with contextlib.suppress(Unavailable):
            await self._guard(
                "register the replica",
                lambda: self._client.set(replica_key(pod_name), address, ex=ttl),
            )

    async def replica_address(self, pod_name: str) -> str | None:
        value = await self._guard(
            "find the replica's address", lambda: self._client.get(replica_key(pod_name))
        )
        return value.decode() if isinstance(value, bytes) else None

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False
