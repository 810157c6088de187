"""The library path for resp.py's two connections (STREAMSPACE_LEAN_REDIS_CLIENT=false): the
same calls over redis-py, so the AgentHub's lookups, publishes and subscription can run without
StreamSpace's own RESP code. Errors are redis-py's, as on the lean path."""

from __future__ import annotations

from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from streamspace.agent_hub.discovery import RedisTarget, pooled_client
from streamspace.agent_hub.resp import Address, Arg, Resolver


class CommandClient(Protocol):
    """What the backend asks of its hot-path connection (resp.RespClient or PooledCommands)."""

    async def call(self, *args: Arg) -> Any: ...
    async def pipeline(self, commands: list[tuple[Arg, ...]]) -> list[Any]: ...
    async def close(self) -> None: ...


class Subscriber(Protocol):
    """A subscription (resp.RespSubscriber or PubSubSubscriber): `get` returns the next
    (channel, data), None when nothing came within `wait`, and raises ConnectionError once
    the connection is lost."""

    address: Address | None

    async def connect(self) -> None: ...
    async def get(self, wait: float) -> tuple[bytes, bytes] | None: ...
    async def close(self) -> None: ...


class PooledCommands:
    """Commands and pipelines on a redis-py client the backend owns (and closes)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def call(self, *args: Arg) -> Any:
        return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def pipeline(self, commands: list[tuple[Arg, ...]]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())

    async def close(self) -> None:
        """The client is the backend's to close."""


class PubSubSubscriber:
    """redis-py's PubSub on a connection of its own, to the node the resolver names."""

    def __init__(
        self, target: RedisTarget, resolve: Resolver, channels: list[str], *, health: float
    ) -> None:
        self._target, self._resolve, self._channels = target, resolve, channels
        self._health = health
        self.address: Address | None = None
        self._client: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None

    async def connect(self) -> None:
        self.address = await self._resolve()
        self._client = pooled_client(
            self._target,
            max_connections=1,
            health_check_interval=max(1, int(self._health)),
            resolve=self._resolve if self._target.sentinels else None,
            # a lost subscription surfaces at once: the backend resubscribes and re-claims
            retry=Retry(NoBackoff(), 0),
        )
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(*self._channels)

    async def get(self, wait: float) -> tuple[bytes, bytes] | None:
        if self._pubsub is None:
            raise RedisConnectionError("not subscribed")
        message = await self._pubsub.get_message(timeout=wait)
        if message is None or message["type"] != "message":
            return None
        return bytes(message["channel"]), bytes(message["data"])

    async def close(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._client is not None:
            await self._client.aclose()
        self._pubsub = self._client = None
