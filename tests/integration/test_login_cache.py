"""The login caches in front of the database (Redis DB 0 with several replicas, the process
with one) must not bring back a login that ended, or a role that changed, when a check read
the database just before the change and writes its answer to the cache just after.

The database here is a stand-in that can hold a check between its read and its answer (the
failure injection: the interleaving is otherwise a matter of microseconds); Redis is real."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from streamspace.config import load_settings
from streamspace.control_plane.app import redis_client
from streamspace.control_plane.auth.login_store import (
    SESSION_ENDED,
    CachingLoginSessionStore,
    DatabaseLoginSessionStore,
    LoginSessionStore,
    RedisLoginSessionStore,
)
from streamspace.control_plane.auth.principal import Principal
from streamspace.errors import Unauthenticated
from tests.support.processes import RedisServer

TOKEN = "token-1"
ALICE = Principal(user_id="u1", org_id="o1", username="alice", role="admin", token_id=TOKEN)


class HeldDatabase:
    """Answers like the database store; `hold()` makes the next check stop after its read."""

    backend = "database"

    def __init__(self) -> None:
        self.principal_row = ALICE
        self.revoked: set[str] = set()
        self._gate: asyncio.Event | None = None
        self.read_done = asyncio.Event()

    def hold(self) -> asyncio.Event:
        self._gate, self.read_done = asyncio.Event(), asyncio.Event()
        return self._gate

    async def principal(self, *, token_id: str) -> Principal:
        active, row = token_id not in self.revoked, self.principal_row  # the read
        if self._gate is not None:
            gate, self._gate = self._gate, None
            self.read_done.set()
            await gate.wait()
        if not active:
            raise Unauthenticated(SESSION_ENDED, code="session_revoked")
        return row

    async def revoke(self, *, token_id: str) -> None:
        self.revoked.add(token_id)

    async def revoke_user(self, *, user_id: str, keep: str | None = None) -> None:
        self.revoked.add(TOKEN)

    async def token_ids(self, *, user_id: str) -> list[str]:
        return [] if TOKEN in self.revoked else [TOKEN]

    async def create(self, **_: Any) -> None:
        return None


@pytest.fixture(params=["redis", "process"])
async def stores(
    request: pytest.FixtureRequest, clean_redis: str
) -> AsyncIterator[tuple[LoginSessionStore, HeldDatabase]]:
    database = HeldDatabase()
    typed = cast(DatabaseLoginSessionStore, database)
    if request.param == "process":
        yield CachingLoginSessionStore(database=typed), database
        return
    client = aioredis.Redis.from_url(f"{clean_redis}/0")
    try:
        yield RedisLoginSessionStore(client=client, database=typed), database
    finally:
        await client.aclose()


async def _check_across(store: LoginSessionStore, database: HeldDatabase, change: Any) -> Principal:
    """A check reads the database, `change` runs and completes, then the check answers."""
    gate = database.hold()
    check = asyncio.create_task(store.principal(token_id=TOKEN))
    async with asyncio.timeout(5):  # the check must miss the cache and read the database
        await database.read_done.wait()
    await change()
    gate.set()
    return await check


@pytest.mark.parametrize("ending", ["logout", "disable"])
async def test_a_login_ended_during_a_check_is_not_undone_by_it(
    stores: tuple[LoginSessionStore, HeldDatabase], ending: str
) -> None:
    store, database = stores

    async def end() -> None:
        if ending == "logout":
            await store.revoke(token_id=TOKEN)
        else:
            await store.revoke_user(user_id="u1")

    # The check read the login while it was live: that one answer may still be "alice".
    assert await _check_across(store, database, end) == ALICE
    # Every check after the logout or disable refuses it.
    with pytest.raises(Unauthenticated):
        await store.principal(token_id=TOKEN)


async def test_a_role_change_during_a_check_applies_to_the_next_request(
    stores: tuple[LoginSessionStore, HeldDatabase],
) -> None:
    store, database = stores

    async def demote() -> None:
        database.principal_row = replace(ALICE, role="user")
        await store.refresh_user(user_id="u1")

    assert (await _check_across(store, database, demote)).role == "admin"  # read before
    assert (await store.principal(token_id=TOKEN)).role == "user"
    assert (await store.principal(token_id=TOKEN)).role == "user"


async def test_a_logout_while_redis_is_unreachable_reaches_it_when_it_is_back(
    tmp_path: Path,
) -> None:
    """Redis stops answering (paused, partitioned) but keeps its data: a logout then cannot
    write its tombstone, and when Redis answers again it still holds the principal another
    replica cached before. That replica must refuse the token within moments, not serve it
    for the rest of the cache TTL."""
    redis_server = RedisServer(log_dir=tmp_path).start()
    database = HeldDatabase()  # one database behind both replicas
    clients = [
        aioredis.Redis.from_url(
            f"redis://127.0.0.1:{redis_server.port}/0",
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
        )
        for _ in range(2)
    ]
    here, there = (
        RedisLoginSessionStore(client=c, database=cast(DatabaseLoginSessionStore, database))
        for c in clients
    )
    try:
        assert await there.principal(token_id=TOKEN) == ALICE  # cached in Redis
        redis_server.send_signal(signal.SIGSTOP)
        await here.revoke(token_id=TOKEN)  # the database takes it; Redis does not answer
        with pytest.raises(Unauthenticated):
            await here.principal(token_id=TOKEN)  # this replica knows at once
        redis_server.send_signal(signal.SIGCONT)
        async with asyncio.timeout(5):
            while True:
                try:
                    await there.principal(token_id=TOKEN)
                except Unauthenticated:
                    break
                await asyncio.sleep(0.1)
    finally:
        redis_server.send_signal(signal.SIGCONT)
        await here.close()
        for client in clients:
            await client.aclose()
        redis_server.stop()


async def test_a_burst_of_checks_past_the_pool_size_is_served_from_redis(
    clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More concurrent requests than REDIS_POOL_SIZE: each waits for a pooled connection and is
    answered from the cache, none falls back to the database."""
    host, port = clean_redis.removeprefix("redis://").split(":")
    monkeypatch.setenv("REDIS_HOST", host)
    monkeypatch.setenv("REDIS_PORT", port)
    monkeypatch.setenv("REDIS_POOL_SIZE", "2")
    client = redis_client(load_settings(), 0)
    database = CountingDatabase()
    store = RedisLoginSessionStore(
        client=client, database=cast(DatabaseLoginSessionStore, database)
    )
    try:
        assert await store.principal(token_id=TOKEN) == ALICE  # fills the cache
        answers = await asyncio.gather(*(store.principal(token_id=TOKEN) for _ in range(50)))
        assert answers == [ALICE] * 50
        assert database.reads == 1
    finally:
        await client.aclose()


class CountingDatabase(HeldDatabase):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def principal(self, *, token_id: str) -> Principal:
        self.reads += 1
        await asyncio.sleep(0)
        return await super().principal(token_id=token_id)
