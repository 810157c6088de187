"""A whole control plane made of real processes: N `streamspace api` replicas sharing a fresh
PostgreSQL database and a private Redis, haproxy in front, and helpers to drive it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.support.app import ADMIN_PASSWORD
from tests.support.processes import ApiReplica, LoadBalancer, Proc, RedisServer, agent_process
from tests.support.services import fresh_postgres

BOOTSTRAP_KEY = "bootstrap-key-for-tests-0123456789"
T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 20.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll an async check until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last
        except (httpx.HTTPError, AssertionError, KeyError) as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def holds(check: Callable[[], object]) -> Callable[[], Awaitable[bool]]:
    """A plain condition as the async check `eventually` polls: `eventually(holds(lambda: x))`."""

    async def run() -> bool:
        return bool(check())

    return run


@dataclass
class Cluster:
    log_dir: Path
    env: dict[str, str]
    redis: RedisServer | None
    replicas: list[ApiReplica] = field(default_factory=list)
    others: list[Proc] = field(default_factory=list)
    lb: LoadBalancer | None = None
    spares: list[ApiReplica] = field(default_factory=list)  # in the LB's list, not started
    _tokens: dict[str, str] = field(default_factory=dict)

    def replica(self, pod: str) -> ApiReplica:
        return next(r for r in self.replicas if r.pod == pod)

    def scale_up(self) -> list[ApiReplica]:
        """Start the spare replicas (the load balancer already lists them and sends them
        traffic once its health checks pass); returns them."""
        started, self.spares = [spare.start() for spare in self.spares], []
        self.replicas += started
        return started

    async def token(
        self, base: str, username: str = "admin", password: str = ADMIN_PASSWORD
    ) -> dict[str, str]:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            r = await client.post(
                "/api/v1/auth/login", json={"username": username, "password": password}
            )
            r.raise_for_status()
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def call(
        self, base: str, method: str, path: str, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        async with httpx.AsyncClient(base_url=base, timeout=15) as client:
            return await client.request(method, path, headers=headers, **kwargs)

    def agent(
        self,
        agent_id: str,
        *,
        url: str | None = None,
        extra: dict[str, str] | None = None,
        bootstrap: bool = True,
    ) -> Proc:
        proc = agent_process(
            agent_id=agent_id,
            url=url or (self.lb.url if self.lb else self.replicas[0].url),
            log_dir=self.log_dir,
            key_file=self.log_dir / f"{agent_id}.key",
            bootstrap_key=BOOTSTRAP_KEY if bootstrap else None,
            extra=extra,
        )
        self.others.append(proc)
        return proc.start()

    async def approve(self, agent_id: str, admin: dict[str, str]) -> None:
        base = self.replicas[0].url

        async def registered() -> bool:
            agents = (await self.call(base, "GET", "/api/v1/agents", admin)).json()
            return any(a["id"] == agent_id for a in agents)

        await eventually(registered, what=f"{agent_id} registered")
        r = await self.call(base, "POST", f"/api/v1/admin/agents/{agent_id}/approve", admin)
        assert r.status_code == 200, r.text

    async def wait_online(
        self, agent_id: str, admin: dict[str, str], pod: str | None = None
    ) -> dict[str, Any]:
        base = next(r.url for r in self.replicas if r.alive)

        async def online() -> dict[str, Any] | None:
            for a in (await self.call(base, "GET", "/api/v1/agents", admin)).json():
                if (
                    a["id"] == agent_id
                    and a["status"] == "online"
                    and (pod is None or a["pod_name"] == pod)
                ):
                    return a  # type: ignore[no-any-return]
            return None

        return await eventually(online, what=f"{agent_id} online")

    async def session_state(self, base: str, sid: str, headers: dict[str, str]) -> str:
        r = await self.call(base, "GET", f"/api/v1/sessions/{sid}", headers)
        return str(r.json()["state"])

    async def wait_state(
        self, sid: str, state: str, headers: dict[str, str], timeout: float = 20
    ) -> None:
        base = self.replicas[0].url if self.replicas[0].alive else self.replicas[-1].url

        async def reached() -> bool:
            return await self.session_state(base, sid, headers) == state

        await eventually(reached, timeout=timeout, what=f"session {sid} {state}")


@asynccontextmanager
async def cluster(
    tmp_path: Path,
    *,
    replicas: int = 3,
    redis: bool = True,
    extra_env: dict[str, str] | None = None,
    lb: bool = True,
    shipped_lb: bool = False,
    spares: int = 0,
    postgres: str | None = None,
) -> AsyncIterator[Cluster]:
    """`spares`: replicas more in the load balancer's list, not started (`Cluster.scale_up`).
    `postgres`: the server to make the database on (a test's own, to stop and start it;
    default: the shared test server)."""
    async with fresh_postgres(postgres) as db_url:
        redis_server = RedisServer(log_dir=tmp_path).start() if redis else None
        env = {
            "DATABASE_URL": db_url,
            "STREAMSPACE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "AGENT_BOOTSTRAP_KEY": BOOTSTRAP_KEY,
            "AGENT_HEARTBEAT_INTERVAL": "1",
            "COMMAND_ACK_TIMEOUT": "2",
            "STREAMSPACE_SWEEP_INTERVAL": "0.5",
            "LOG_LEVEL": "INFO",
            "DB_MAX_OPEN_CONNS": "10",
            "DB_MAX_IDLE_CONNS": "2",
            **(extra_env or {}),
        }
        if redis_server is not None:
            env |= {
                "AGENTHUB_REDIS_ENABLED": "true",
                "REDIS_HOST": "127.0.0.1",
                "REDIS_PORT": str(redis_server.port),
            }
        c = Cluster(log_dir=tmp_path, env=env, redis=redis_server)
        try:
            for i in range(replicas):
                c.replicas.append(
                    ApiReplica(
                        pod=f"api-{'abc'[i] if i < 3 else i}", env=env, log_dir=tmp_path
                    ).start()
                )
            c.spares = [
                ApiReplica(pod=f"api-{i}", env=env, log_dir=tmp_path)
                for i in range(replicas, replicas + spares)
            ]
            if lb:
                c.lb = LoadBalancer(
                    backends=[*c.replicas, *c.spares], log_dir=tmp_path, shipped=shipped_lb
                ).start()
            yield c
        finally:
            for proc in [*c.others, *([c.lb] if c.lb else []), *c.replicas]:
                proc.kill()
            for server in {redis_server, c.redis} - {None}:
                server.kill()  # type: ignore[union-attr]


async def enroll_agent(
    base: str,
    admin: dict[str, str],
    agent_id: str,
    *,
    platform: str = "memory",
    max_sessions: int = 10,
) -> str:
    """Register with the bootstrap key, approve as admin, collect the agent's own key."""
    body = {"agentId": agent_id, "platform": platform, "capacity": {"maxSessions": max_sessions}}
    boot = {"X-Agent-API-Key": BOOTSTRAP_KEY}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert (
            await client.post("/api/v1/agents/register", json=body, headers=boot)
        ).status_code == 202
        approved = await client.post(f"/api/v1/admin/agents/{agent_id}/approve", headers=admin)
        assert approved.status_code == 200, approved.text
        r = await client.post("/api/v1/agents/register", json=body, headers=boot)
        assert r.status_code == 200, r.text
        return str(r.json()["apiKey"])


def file_elected(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An agent's environment for leader election through a lock file under `tmp_path`, with
    a short lease (3 s), so tests see failovers in seconds; `extra` adds or overrides."""
    return {
        "ENABLE_HA": "true",
        "LEADER_ELECTION_BACKEND": "file",
        "LOCK_FILE_PATH": str(tmp_path / "agent.lock"),
        "LEASE_DURATION": "3",
        "RENEW_DEADLINE": "2",
        "RETRY_PERIOD": "0.3",
        **extra,
    }
