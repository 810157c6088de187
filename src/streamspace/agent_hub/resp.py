"""The hub's hot path to Redis: PUBLISH and MGET pipelined on one connection, and a subscriber
that hands each pub/sub message over as soon as hiredis has parsed it.

Why not redis-py here: on this 2-core machine one PUBLISH through a redis-py pipeline plus its
receipt through `PubSub.get_message` costs about 280 µs of CPU (connection-pool checkout, a
pipeline object, a timeout context and a parser per call); the same message over these two
connections costs about 36 µs. Every cross-pod command and ping pays it twice (there and back),
so it was a quarter of the replicas' CPU per cross-pod ping. hiredis (the C parser redis-py
itself uses when installed) does all parsing and command packing; this module only matches
replies to callers, in order. Everything else (scripts, key claims, the login store) stays on
redis-py.

Failures use redis-py's exception classes, so callers handle both clients alike: a lost or
unreachable server is `ConnectionError`, a reply not received within the timeout is
`TimeoutError` (the connection is dropped then: later replies would be matched to the wrong
callers), an error reply is `ResponseError`. A `READONLY` reply means the node was demoted to a
replica under us (a Sentinel failover): the connection is dropped and `ConnectionError` raised,
so the next use asks the resolver for the master again.

Both connections take an `Address` or a `Resolver` (discovery.py), called on every (re)connect.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int

# A subscriber whose consumer falls this far behind stops reading the socket (Redis buffers,
# then applies its client-output-buffer-limit) instead of growing the replica without bound.
PAUSE_AT = 10_000
RESUME_AT = 1_000


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> Address:
        """`redis://[[user]:password@]host[:port][/db]` or `rediss://...`, as redis-py reads it
        (keys are read in the URL's db; pub/sub channels are the same in every db)."""
        parts = parse_url(url)
        if "path" in parts:
            raise ValueError("the AgentHub needs a TCP Redis address, not a unix socket")
        return cls(
            host=str(parts.get("host", "localhost")),
            port=int(parts.get("port", 6379)),
            username=parts.get("username"),
            password=parts.get("password"),
            db=int(parts.get("db", 0)),
            tls=parts.get("connection_class") is SSLConnection,
        )


Resolver = Callable[[], Awaitable[Address]]


def as_resolver(target: Address | Resolver) -> Resolver:
    """A resolver for a fixed address too, so connections have one way to find their node."""
    if not isinstance(target, Address):
        return target
    fixed = target

    async def resolve() -> Address:
        return fixed

    return resolve


def _pack(command: tuple[Arg, ...]) -> bytes:
    # hiredis's stub types the argument as a 1-tuple; it takes any number of arguments
    packed: bytes = hiredis.pack_command(command)  # type: ignore[arg-type]
    return packed


class _Protocol(asyncio.Protocol):
    """One connection: replies go to the oldest waiting caller; once subscribed, pub/sub
    messages go to `on_message` instead."""

    def __init__(self, on_message: Callable[[bytes, bytes], None] | None = None) -> None:
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._on_message = on_message
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.last_received = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.last_received = self._loop.time()
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                if (
                    self._on_message is not None
                    and type(reply) is list
                    and len(reply) == 3
                    and reply[0] == b"message"
                ):
                    self._on_message(reply[1], reply[2])
                elif self._waiters:
                    waiter = self._waiters.popleft()
                    if not waiter.done():  # a caller that gave up still had its reply counted
                        waiter.set_result(reply)
                # else: a subscriber's health-check pong, nobody waits for it
        except InvalidResponse as exc:
            self.fail(RedisConnectionError(f"Redis sent a malformed reply: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def fail(self, exc: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
        if not self.lost.done():
            self.lost.set_exception(exc)
            self.lost.exception()  # retrieved: nobody may be waiting on it
        if self.transport is not None:
            self.transport.abort()

    @property
    def closed(self) -> bool:
        return self.lost.done()

    def send(self, *commands: tuple[Arg, ...]) -> list[asyncio.Future[Any]]:
        """Write the commands at once; one future per reply, in order."""
        if self.closed or self.transport is None:
            raise RedisConnectionError("Redis connection lost")
        futures = self.expect(len(commands))
        self.transport.write(b"".join(_pack(c) for c in commands))
        return futures

    def expect(self, count: int) -> list[asyncio.Future[Any]]:
        """Futures for replies that one command sends several of (SUBSCRIBE: one per channel)."""
        futures = [self._loop.create_future() for _ in range(count)]
        self._waiters.extend(futures)
        return futures


async def _gather(futures: list[asyncio.Future[Any]], within: float, proto: _Protocol) -> list[Any]:
    try:
        async with asyncio.timeout(within):
            replies = [await f for f in futures]
    except TimeoutError:
        proto.fail(RedisTimeoutError("Redis connection dropped: no reply within the timeout"))
        raise RedisTimeoutError(f"no reply from Redis within {within:g} s") from None
    return replies


async def _require(
    proto: _Protocol, futures: list[asyncio.Future[Any]], within: float, what: str
) -> None:
    """The replies to a connection's setup (AUTH, SELECT, SUBSCRIBE): an error reply is a
    refusal, and the connection is dropped."""
    for reply in await _gather(futures, within, proto):
        if isinstance(reply, ResponseError):
            proto.fail(RedisConnectionError(f"Redis refused {what}"))
            raise RedisConnectionError(f"Redis refused {what}: {reply}")


async def _open(
    address: Address,
    within: float,
    on_message: Callable[[bytes, bytes], None] | None = None,
) -> _Protocol:
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if address.tls else None
    try:
        async with asyncio.timeout(within):
            _, proto = await loop.create_connection(
                lambda: _Protocol(on_message), address.host, address.port, ssl=context
            )
    except (OSError, TimeoutError) as exc:
        raise RedisConnectionError(
            f"cannot connect to Redis at {address.host}:{address.port}: {exc or 'timed out'}"
        ) from exc
    if address.password is not None:
        auth: tuple[Arg, ...] = ("AUTH", address.password)
        if address.username:
            auth = ("AUTH", address.username, address.password)
        await _require(proto, proto.send(auth), within, "the password")
    if address.db and on_message is None:
        await _require(proto, proto.send(("SELECT", address.db)), within, f"db {address.db}")
    return proto


async def request(address: Address, *command: Arg, within: float) -> Any:
    """One command on a connection of its own, closed after the reply (Sentinel queries, role
    probes); an error reply is raised."""
    proto = await _open(address, within)
    try:
        (reply,) = await _gather(proto.send(command), within, proto)
    finally:
        if proto.transport is not None:
            proto.transport.close()
    if isinstance(reply, ResponseError):
        raise reply
    return reply


def _demoted(proto: _Protocol, reply: ResponseError) -> RedisConnectionError:
    proto.fail(RedisConnectionError("Redis node was demoted to a replica"))
    return RedisConnectionError(f"Redis node is no longer the master: {reply}")


class RespClient:
    """One pipelined connection, opened on first use and again after a loss, each time to the
    node the resolver names."""

    def __init__(self, target: Address | Resolver, *, timeout: float = 2.0) -> None:
        self._resolve, self._timeout = as_resolver(target), timeout
        self._proto: _Protocol | None = None
        self._opening = asyncio.Lock()

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        async with self._opening:
            if self._proto is None or self._proto.closed:
                self._proto = await _open(await self._resolve(), self._timeout)
            return self._proto

    async def call(self, *args: Arg) -> Any:
        (reply,) = await self.pipeline([args])
        return reply

    async def pipeline(self, commands: list[tuple[Arg, ...]]) -> list[Any]:
        """All commands in one write; raises the first error reply after all have arrived."""
        proto = await self._connection()
        replies = await _gather(proto.send(*commands), self._timeout, proto)
        for reply in replies:
            if isinstance(reply, ResponseError):
                if str(reply).startswith("READONLY"):
                    raise _demoted(proto, reply)
                raise reply
        return replies

    async def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


class RespSubscriber:
    """A subscribed connection. `get` returns the next (channel, data), None when nothing came
    within `wait` seconds, and raises ConnectionError once the connection is lost or stops
    answering: an idle connection is sent a PING every `health_interval` seconds and must
    answer within `timeout` (a paused or unplugged server sends no RST)."""

    def __init__(
        self,
        target: Address | Resolver,
        channels: list[str],
        *,
        timeout: float = 2.0,
        health_interval: float = 10.0,
    ) -> None:
        self._resolve, self._channels = as_resolver(target), channels
        self.address: Address | None = None  # the node it subscribed on
        self._timeout, self._health = timeout, health_interval
        self._messages: deque[tuple[bytes, bytes]] = deque()
        self._arrived: asyncio.Future[None] | None = None
        self._proto: _Protocol | None = None
        self._paused = False
        self._pinged_at: float | None = None

    def _wake(self, *_: object) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        self._messages.append((channel, data))
        self._wake()
        if len(self._messages) >= PAUSE_AT and not self._paused and self._proto is not None:
            assert self._proto.transport is not None
            self._proto.transport.pause_reading()
            self._paused = True

    async def connect(self) -> None:
        self.address = await self._resolve()
        self._proto = proto = await _open(self.address, self._timeout, self._on_message)
        proto.lost.add_done_callback(self._wake)
        confirmations = proto.expect(len(self._channels))
        assert proto.transport is not None
        proto.transport.write(_pack(("SUBSCRIBE", *self._channels)))
        await _require(proto, confirmations, self._timeout, "the subscription")  # NOAUTH, ACL

    async def get(self, wait: float) -> tuple[bytes, bytes] | None:
        proto = self._proto
        if proto is None:
            raise RedisConnectionError("not subscribed")
        if not self._messages:
            loop = asyncio.get_running_loop()
            if not proto.closed:
                self._arrived = loop.create_future()
                try:
                    async with asyncio.timeout(wait):
                        await self._arrived
                except TimeoutError:
                    pass
                finally:
                    self._arrived = None
            if not self._messages:
                if proto.closed:
                    proto.lost.result()  # raises why
                self._check_health(proto, loop.time())
                return None
        message = self._messages.popleft()
        if self._paused and len(self._messages) <= RESUME_AT and proto.transport is not None:
            proto.transport.resume_reading()
            self._paused = False
        return message

    def _check_health(self, proto: _Protocol, now: float) -> None:
        if self._pinged_at is not None and proto.last_received >= self._pinged_at:
            self._pinged_at = None  # answered (or other traffic came): alive
        if self._pinged_at is None:
            if now - proto.last_received >= self._health:
                assert proto.transport is not None
                proto.transport.write(_pack(("PING",)))
                self._pinged_at = now
        elif now - self._pinged_at > self._timeout:
            proto.fail(RedisTimeoutError("Redis did not answer the subscriber's PING"))
            raise RedisConnectionError(f"Redis did not answer a PING within {self._timeout:g} s")

    async def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
