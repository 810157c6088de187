"""Where the Redis master is: the one place that knows. A `RedisTarget` is either a fixed
address (REDIS_HOST/REDIS_PORT) or a set of Sentinels; `resolver` turns it into the function
every connection calls on each (re)connect, and `pooled_client` builds redis-py clients on it.

With Sentinel, each resolution asks the sentinels in turn for the master's address
(`SENTINEL get-master-addr-by-name`) and checks that node answers `ROLE` as master, so a
sentinel that has not yet seen a failover, or one that is down, is skipped.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from streamspace.agent_hub.resp import Address, Resolver, as_resolver, request

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedisTarget:
    """`url` names the database, credentials and (without sentinels) the node; with sentinels
    the node is whichever master they name for `master`."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = "mymaster"
    sentinel_password: str | None = None


class SentinelResolver:
    """Asks each sentinel in turn for the master and verifies it; logs when the master changes."""

    def __init__(self, target: RedisTarget, *, timeout: float = 2.0) -> None:
        self._node = Address.from_url(target.url)
        self._sentinels = [
            Address(host=host, port=port, password=target.sentinel_password)
            for host, port in target.sentinels
        ]
        self._master, self._timeout = target.master, timeout
        self._last: tuple[str, int] | None = None

    async def __call__(self) -> Address:
        problems: list[str] = []
        for sentinel in self._sentinels:
            try:
                return await self._ask(sentinel)
            except (RedisError, OSError) as exc:
                problems.append(f"{sentinel.host}:{sentinel.port}: {exc}")
        raise RedisConnectionError(
            f"Redis Sentinel: no master {self._master!r} found ({'; '.join(problems)})"
        )

    async def _ask(self, sentinel: Address) -> Address:
        reply = await request(
            sentinel, "SENTINEL", "get-master-addr-by-name", self._master, within=self._timeout
        )
        if not reply:
            raise RedisConnectionError(f"does not monitor a master named {self._master!r}")
        host, port = reply[0].decode(), int(reply[1])
        node = replace(self._node, host=host, port=port)
        await self._verify(node)
        if self._last != (host, port):
            log.info("Redis Sentinel: master %s at %s:%d", self._master, host, port)
            self._last = (host, port)
        return node

    async def _verify(self, node: Address) -> None:
        """A sentinel that has not yet seen a failover may name the demoted node."""
        role = await request(node, "ROLE", within=self._timeout)
        if not role or role[0] != b"master":
            raise RedisConnectionError(f"names {node.host}:{node.port}, which is not a master")


def resolver(target: RedisTarget) -> Resolver:
    if target.sentinels:
        return SentinelResolver(target)
    return as_resolver(Address.from_url(target.url))


class _ResolvedPool(aioredis.BlockingConnectionPool):
    """A blocking pool whose connections ask the resolver for the master on every connect;
    redis-py's Sentinel connection turns a READONLY reply (a demoted master) into a lost
    connection, reconnected through the resolver."""

    is_master = True
    check_connection = False

    def __init__(self, *, resolve: Resolver, **kwargs: Any) -> None:
        super().__init__(connection_class=SentinelManagedConnection, **kwargs)
        self.connection_kwargs["connection_pool"] = weakref.proxy(self)
        self._resolve = resolve
        self.master_address: tuple[str, int] | None = None

    async def get_master_address(self) -> tuple[str, int]:
        node = await self._resolve()
        if self.master_address != (node.host, node.port):
            self.master_address = (node.host, node.port)
            await self.disconnect(inuse_connections=False)  # idle ones reconnect to the new one
        return node.host, node.port


def pooled_client(
    target: RedisTarget,
    *,
    max_connections: int,
    health_check_interval: int = 0,
    resolve: Resolver | None = None,
    retry: Retry | None = None,
) -> aioredis.Redis:
    """A redis-py client whose callers wait (up to 2 s) for a pooled connection when all are
    busy; redis-py's default pool raises "Too many connections" at once, which callers take for
    an outage. 2 s socket and connect timeouts; aclose() closes the pool's connections. Its
    connections ask `resolve` (default: the target's) for the node when there are sentinels or
    a resolver is given, else they dial the URL's node. `retry`: redis-py's retry policy
    (default: redis-py's own)."""
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "timeout": 2.0,
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
        "health_check_interval": health_check_interval,
    }
    if retry is not None:
        options["retry"] = retry
    if not target.sentinels and resolve is None:
        return aioredis.Redis.from_pool(
            aioredis.BlockingConnectionPool.from_url(target.url, **options)
        )
    node = Address.from_url(target.url)
    if node.tls:
        raise ValueError("TLS to Redis through Sentinel is not supported")
    pool = _ResolvedPool(
        resolve=resolve or resolver(target),
        username=node.username,
        password=node.password,
        db=node.db,
        **options,
    )
    return aioredis.Redis.from_pool(pool)
