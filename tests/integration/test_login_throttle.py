"""Login throttling against parallel guessing: budgets taken before the password is verified,
in one process and across two replicas sharing Redis; the lockout's Retry-After, its expiry and
an admin clearing it; X-Forwarded-For honoured from TRUSTED_PROXIES only."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from sqlalchemy import select
from typer.testing import CliRunner

from streamspace.cli import app as cli_app
from streamspace.config import load_settings
from streamspace.config.control_plane import ControlPlaneSettings
from streamspace.control_plane.auth.passwords import verify_password
from streamspace.control_plane.db.records import AuditEventRecord
from streamspace.control_plane.server import server_config
from streamspace.errors import ConfigError
from tests.support.app import ADMIN_PASSWORD, context, login, running_app
from tests.support.cluster import eventually
from tests.support.services import flush_redis, redis_host_port

BUDGET = 5
GUESSES = 200
ALICE_PASSWORD = "alice-pass-123"
ATTACKER, ALICE_HOME, ADMIN_DESK = "198.51.100.66", "192.0.2.10", "192.0.2.99"


class CountingVerifier:
    """A counting double around the real argon2 verifier: it verifies exactly as a login does
    and counts how many verifications the throttle let through."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, stored: str | None, password: str) -> bool:
        self.calls += 1
        return await verify_password(stored, password)


def count_verifications(app: FastAPI) -> CountingVerifier:
    counter = CountingVerifier()
    context(app).verify_password = counter
    return counter


@asynccontextmanager
async def client_at(app: FastAPI, address: str, **kw: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose connection comes from `address` (the ASGI peer)."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", **kw) as c:
        yield c


async def redis_settings() -> dict[str, Any]:
    await flush_redis()
    host, port = redis_host_port()
    return {"cache_enabled": True, "redis_host": host, "redis_port": port}


async def guess(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )


async def create_alice(app: FastAPI) -> tuple[dict[str, str], str]:
    """The admin's headers (logged in from their desk) and alice's user id."""
    async with client_at(app, ADMIN_DESK) as desk:
        admin = await login(desk)
        created = await desk.post(
            "/api/v1/users",
            headers=admin,
            json={"username": "alice", "password": ALICE_PASSWORD, "role": "user"},
        )
    assert created.status_code == 201, created.text
    return admin, str(created.json()["id"])


async def audited(app: FastAPI) -> list[tuple[str, object]]:
    async with context(app).db() as db:
        rows = await db.scalars(
            select(AuditEventRecord).where(AuditEventRecord.action == "user.lockout_cleared")
        )
        return [(row.actor, row.detail) for row in rows]


async def storm(clients: list[httpx.AsyncClient], *, username: str) -> list[httpx.Response]:
    """GUESSES wrong passwords for `username` at once, spread over `clients`."""
    return await asyncio.gather(
        *(guess(clients[i % len(clients)], username, f"wrong-{i}") for i in range(GUESSES))
    )


def assert_locked_out(response: httpx.Response, *, window: float) -> None:
    """429 that says when to retry, in its header and in its message, alike."""
    assert response.status_code == 429, response.text
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= window
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    match = re.search(r"try again in (\d+) s", error["message"])
    assert match and abs(int(match.group(1)) - wait) <= 1, error["message"]


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    return await redis_settings() if request.param == "redis" else {}


async def test_parallel_guesses_cost_at_most_the_budget_and_an_admin_clears_the_lockout(
    backend: dict[str, Any], tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'streamspace.db'}"
    async with running_app(database_url=url, login_max_failures=BUDGET, **backend) as (app, _):
        admin, alice_id = await create_alice(app)
        verifications = count_verifications(app)
        async with client_at(app, ATTACKER) as attacker:
            answers = await storm([attacker], username="alice")
        assert verifications.calls <= BUDGET
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [401] * BUDGET + [429] * (GUESSES - BUDGET)
        assert_locked_out(next(r for r in answers if r.status_code == 429), window=300)

        async with client_at(app, ALICE_HOME) as home, client_at(app, ADMIN_DESK) as desk:
            assert_locked_out(await guess(home, "alice", ALICE_PASSWORD), window=300)
            cleared = await desk.delete(f"/api/v1/users/{alice_id}/lockout", headers=admin)
            assert cleared.status_code == 204, cleared.text
            assert await audited(app) == [("admin", {"user": "alice"})]
            assert (await guess(home, "alice", ALICE_PASSWORD)).status_code == 200
        async with client_at(app, ATTACKER) as attacker:
            # The attacker's address stays locked: clearing alice did not clear it.
            assert_locked_out(await guess(attacker, "alice", ALICE_PASSWORD), window=300)
        assert verifications.calls <= BUDGET + 1


async def test_parallel_right_logins_from_one_address_wait_a_moment_not_a_window(
    backend: dict[str, Any], tmp_path: Path
) -> None:
    """An office behind one NAT address: logins in flight fill the budget only while they are
    verified, and a right password costs nothing afterwards."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'streamspace.db'}"
    async with running_app(database_url=url, login_max_failures=BUDGET, **backend) as (app, _):
        await create_alice(app)
        async with client_at(app, ALICE_HOME) as office:
            answers = await asyncio.gather(
                *(guess(office, "alice", ALICE_PASSWORD) for _ in range(40))
            )
            refused = [r for r in answers if r.status_code != 200]
            assert len(refused) < len(answers)
            assert all(r.status_code == 429 and r.headers["Retry-After"] == "1" for r in refused)
            for _ in range(3 * BUDGET):
                assert (await guess(office, "alice", ALICE_PASSWORD)).status_code == 200


async def test_two_replicas_sharing_redis_hold_one_budget(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'streamspace.db'}"
    shared = await redis_settings() | {"login_max_failures": BUDGET}
    async with (
        running_app(database_url=url, pod_name="replica-a", **shared) as (app_a, _),
        running_app(database_url=url, pod_name="replica-b", **shared) as (app_b, _),
    ):
        await create_alice(app_a)
        counters = [count_verifications(app_a), count_verifications(app_b)]
        # Two attacker addresses, each on both replicas: only the username's budget binds.
        async with (
            client_at(app_a, ATTACKER) as a1,
            client_at(app_b, ATTACKER) as b1,
            client_at(app_a, "198.51.100.67") as a2,
            client_at(app_b, "198.51.100.67") as b2,
        ):
            answers = await storm([a1, b1, a2, b2], username="alice")
        assert sum(c.calls for c in counters) <= BUDGET
        assert sum(r.status_code == 401 for r in answers) <= BUDGET
        async with client_at(app_b, ALICE_HOME) as home:
            assert_locked_out(await guess(home, "alice", ALICE_PASSWORD), window=300)


async def test_the_lockout_ends_with_its_window(backend: dict[str, Any], tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'streamspace.db'}"
    settings = {"login_max_failures": 2, "login_failure_window": 1.0} | backend
    async with running_app(database_url=url, **settings) as (app, _):
        await create_alice(app)
        async with client_at(app, ATTACKER) as attacker:
            await storm([attacker], username="alice")
        async with client_at(app, ALICE_HOME) as home:
            assert_locked_out(await guess(home, "alice", ALICE_PASSWORD), window=1)

            async def logged_in() -> bool:
                return (await guess(home, "alice", ALICE_PASSWORD)).status_code == 200

            await eventually(logged_in, timeout=10, what="alice's lockout to end")


async def test_a_user_cannot_clear_a_lockout(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'streamspace.db'}"
    async with running_app(database_url=url) as (app, _):
        _, alice_id = await create_alice(app)
        async with client_at(app, ALICE_HOME) as home:
            alice = await login(home, "alice", ALICE_PASSWORD)
            refused = await home.delete(f"/api/v1/users/{alice_id}/lockout", headers=alice)
            assert refused.status_code == 403
            missing = await home.delete("/api/v1/users/nobody/lockout", headers=alice)
            assert missing.status_code == 403


async def spend_address_budget(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """BUDGET failures, each for another username so that only the address budget binds."""
    for i in range(BUDGET):
        r = await client.post(
            "/api/v1/auth/login",
            headers=headers,
            json={"username": f"ghost{i}", "password": "wrong"},
        )
        assert r.status_code == 401


async def blocked(client: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    r = await client.post(
        "/api/v1/auth/login",
        headers=headers,
        json={"username": "admin", "password": ADMIN_PASSWORD},
    )
    assert r.status_code in (200, 429), r.text
    return r.status_code == 429


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'streamspace.db'}"
    # No TRUSTED_PROXIES (the default): not even loopback is believed.
    async with (
        running_app(database_url=url, login_max_failures=BUDGET) as (app, _),
        client_at(app, "127.0.0.1") as peer,
    ):
        await spend_address_budget(peer, {"X-Forwarded-For": "203.0.113.1"})
        assert await blocked(peer, {"X-Forwarded-For": "203.0.113.2"})


async def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'streamspace.db'}"
    trusted = {"login_max_failures": BUDGET, "trusted_proxies": "10.1.2.0/24, 127.0.0.1"}
    async with (
        running_app(database_url=url, **trusted) as (app, _),
        client_at(app, "10.1.2.3") as proxy,
        client_at(app, "10.9.9.9") as outsider,
    ):
        # The client forged a left entry; the rightmost untrusted one is what nginx saw.
        forged = {"X-Forwarded-For": "203.0.113.2, 203.0.113.1, 127.0.0.1"}
        await spend_address_budget(proxy, forged)
        assert await blocked(proxy, {"X-Forwarded-For": "203.0.113.1"})
        assert not await blocked(proxy, {"X-Forwarded-For": "203.0.113.2"})
        # The proxy's own address was not charged, and a peer outside the list is itself.
        assert not await blocked(proxy, {})
        assert not await blocked(outsider, {"X-Forwarded-For": "203.0.113.1"})


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ConfigError, match=r"TRUSTED_PROXIES.*'nginx'"):
        load_settings(trusted_proxies="10.0.0.0/8, nginx")
    settings = ControlPlaneSettings(trusted_proxies="10.0.0.7, fd00::/64")
    assert settings.trusted_proxy_networks == ["10.0.0.7/32", "fd00::/64"]
    assert ControlPlaneSettings().trusted_proxy_networks == []


def test_uvicorn_does_not_trust_forwarded_headers_on_its_own() -> None:
    """uvicorn's proxy_headers would believe 127.0.0.1 whatever TRUSTED_PROXIES says."""
    settings = ControlPlaneSettings()
    assert server_config(FastAPI(), settings).proxy_headers is False


def cli(data_dir: Path, *args: str, code: int = 0, **env: str) -> str:
    environment = {"STREAMSPACE_DATA_DIR": str(data_dir), "DATABASE_URL": "", **env}
    result = CliRunner().invoke(cli_app, list(args), env=environment)
    assert result.exit_code == code, result.output
    return result.output


def test_the_cli_clears_a_lockout_on_every_replica(tmp_path: Path) -> None:
    asyncio.run(flush_redis())
    host, port = redis_host_port()
    redis_env = {"CACHE_ENABLED": "true", "REDIS_HOST": host, "REDIS_PORT": str(port)}
    cli(tmp_path, "users", "create", "alice", STREAMSPACE_NEW_USER_PASSWORD=ALICE_PASSWORD)
    shared = redis.Redis(host=host, port=port, db=0)
    try:
        shared.set("loginfail:user:alice", BUDGET, ex=300)
        assert "cleared" in cli(tmp_path, "users", "unlock", "alice", **redis_env)
        assert shared.get("loginfail:user:alice") is None
    finally:
        shared.close()
    assert "no user 'bob'" in cli(tmp_path, "users", "unlock", "bob", code=2, **redis_env)
    assert "DELETE /api/v1/users/" in cli(tmp_path, "users", "unlock", "alice", code=2)
