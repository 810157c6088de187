"""REST latency of one real `streamspace api` replica under open-loop load, on SQLite and on
PostgreSQL: p50/p99 and achieved throughput of login, list sessions and get template, against
GET /health measured at the same rate in the same run (the baseline).

    .venv/bin/python bench/api_latency.py [--rate 200] [--duration 15] [--login-rate R]
        [--databases sqlite postgres] [--pg-url URL] [--users 20] [--sessions-per-user 10]

Open loop: request i is due at start + i/rate whether or not earlier ones have answered, and
its latency counts from that due time (so a server or client that falls behind shows it).
Requests still unanswered 10 s after the last one was sent are cancelled and counted as errors;
achieved/s is successful answers over the phase's wall time.
Data setup: users through the API; one agent and `--sessions-per-user` running sessions per
user are inserted straight into the database with the ORM records, because sessions only
reach the database through a connected agent. PostgreSQL: a fresh database, dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from streamspace.control_plane.db.records import (
    AgentRecord,
    SessionRecord,
    TemplateRecord,
    UserRecord,
)

ADMIN_PASSWORD = "bench-admin-pass"
USER_PASSWORD = "bench-user-pass"
TARGET_P99_MS = 20.0
GRACE = 10.0  # seconds a phase waits for answers after its last request is sent
VENV_BIN = Path(sys.executable).parent


@dataclass(kw_only=True)
class Phase:
    name: str
    rate: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0
    max_send_lag: float = 0.0
    server_cpu: float = 0.0  # CPU seconds the api process used during the phase

    @property
    def sent(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def percentile_ms(self, fraction: float) -> float:
        """Nearest rank, no interpolation: every figure is a measured request."""
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return 1000 * ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


Send = Callable[[int], Awaitable[int]]  # request i -> HTTP status


@contextmanager
def quiet_collector() -> Iterator[None]:
    """No cyclic garbage collection in this (client) process while a phase runs: with
    thousands of aiohttp requests alive, a full collection stalled the client's event loop by
    up to 90 ms, and every request due meanwhile was charged that stall as server latency. The
    server's own collections still count; this only keeps the instrument from adding its own."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


async def open_loop(*, name: str, send: Send, rate: float, duration: float) -> Phase:
    loop = asyncio.get_running_loop()
    phase = Phase(name=name, rate=rate)
    count = int(rate * duration)
    start = loop.time() + 0.05

    async def one(i: int, due: float) -> None:
        phase.max_send_lag = max(phase.max_send_lag, loop.time() - due)
        try:
            status = await send(i)
        except (aiohttp.ClientError, TimeoutError) as exc:
            key = type(exc).__name__
        else:
            if status < 400:
                phase.latencies.append(loop.time() - due)
                return
            key = f"HTTP {status}"
        phase.errors[key] = phase.errors.get(key, 0) + 1

    tasks = []
    for i in range(count):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append(asyncio.create_task(one(i, due)))
    _, late = await asyncio.wait(tasks, timeout=GRACE)
    for task in late:  # a saturated server would otherwise keep the phase going for minutes
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    if late:
        phase.errors[f"unfinished after +{GRACE:.0f} s"] = len(late)
    phase.wall = loop.time() - start
    return phase


# --- the server and its data -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def api_process(*, database_url: str, log_dir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STREAMSPACE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "STREAMSPACE_PORT": str(port),
        "STREAMSPACE_HOST": "127.0.0.1",
        "POD_NAME": "bench-api",
        "LOG_LEVEL": "WARNING",
        # The guide's default of 5 idle connections makes every burst beyond 5 concurrent
        # requests open and close PostgreSQL connections; 10 is the tuning operations.md gives.
        "DB_MAX_IDLE_CONNS": "10",
        # Every login here comes from 127.0.0.1, at --login-rate: with the default budget of 5
        # slots per address, logins beyond 5 being verified at once would be refused (429,
        # retry in 1 s) and the phase would measure the throttle, not the login.
        "STREAMSPACE_LOGIN_MAX_FAILURES": "100000",
    }
    log_path = log_dir / f"api-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "streamspace"), "api"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc, log_path=log_path)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_ready(url: str, *, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamspace api exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"streamspace api not ready after 60 s; log: {log_path}")


async def create_postgres(base_url: str) -> str:
    name = f"ss_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return base_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_postgres(base_url: str, url: str) -> None:
    admin = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    await admin.dispose()


async def login(client: httpx.AsyncClient, username: str, password: str) -> str:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def make_users(client: httpx.AsyncClient, *, count: int) -> list[str]:
    admin = {"Authorization": f"Bearer {await login(client, 'admin', ADMIN_PASSWORD)}"}
    names = [f"bench-user-{i:03d}" for i in range(count)]
    for name in names:
        response = await client.post(
            "/api/v1/users", headers=admin, json={"username": name, "password": USER_PASSWORD}
        )
        response.raise_for_status()
    return names


async def insert_sessions(database_url: str, *, per_user: int) -> int:
    """One approved agent and `per_user` running sessions for every bench user, via the ORM."""
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        template = (
            await conn.execute(select(TemplateRecord.id).where(TemplateRecord.name == "terminal"))
        ).scalar_one()
        users = (
            await conn.execute(
                select(UserRecord.id, UserRecord.org_id).where(UserRecord.role == "user")
            )
        ).all()
        agent = {"id": "bench-agent", "platform": "docker", "approval_status": "approved"}
        await conn.execute(AgentRecord.__table__.insert(), [agent])
        rows = [
            {
                "id": uuid.uuid4().hex,
                "org_id": org_id,
                "user_id": user_id,
                "template_id": template,
                "template_name": "terminal",
                "agent_id": "bench-agent",
                "state": "running",
            }
            for user_id, org_id in users
            for _ in range(per_user)
        ]
        await conn.execute(SessionRecord.__table__.insert(), rows)
    await engine.dispose()
    return len(rows)


# --- the run -----------------------------------------------------------------------------


async def measure(url: str, pid: int, args: argparse.Namespace, *, database: str) -> list[Phase]:
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        names = await make_users(client, count=args.users)
        sessions = await insert_sessions(args.database_url, per_user=args.sessions_per_user)
        tokens = [await login(client, name, USER_PASSWORD) for name in names]
        auth = [{"Authorization": f"Bearer {t}"} for t in tokens]
        listed = (await client.get("/api/v1/sessions", headers=auth[0])).json()
    print(
        f"[{database}] {len(names)} users, {sessions} sessions inserted; "
        f"a user lists {len(listed)} sessions",
        flush=True,
    )
    # The load itself goes through aiohttp: about a third of httpx's CPU per request, which
    # matters when the client shares the server's two cores (with httpx the client, not the
    # server, fell behind first, even on GET /health).
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as load:

        async def call(method: str, path: str, **kwargs: object) -> int:
            async with load.request(method, path, **kwargs) as response:  # type: ignore[arg-type]
                await response.read()
                return response.status

        def health(i: int) -> Awaitable[int]:
            return call("GET", "/health")

        def login_(i: int) -> Awaitable[int]:
            body = {"username": names[i % len(names)], "password": USER_PASSWORD}
            return call("POST", "/api/v1/auth/login", json=body)

        def list_sessions(i: int) -> Awaitable[int]:
            return call("GET", "/api/v1/sessions", headers=auth[i % len(auth)])

        def get_template(i: int) -> Awaitable[int]:
            return call("GET", "/api/v1/templates/terminal", headers=auth[i % len(auth)])

        plan: list[tuple[str, Send, float]] = [
            ("GET /health (baseline)", health, args.rate),
            ("POST /api/v1/auth/login", login_, args.login_rate or args.rate),
            ("GET /api/v1/sessions", list_sessions, args.rate),
            ("GET /api/v1/templates/terminal", get_template, args.rate),
        ]
        for _, send, _ in plan:  # warm-up: connections, caches, first-query plans
            await asyncio.gather(*(send(i) for i in range(10)))
        phases = []
        for name, send, rate in plan:
            cpu = cpu_seconds(pid)
            with quiet_collector():
                phase = await open_loop(name=name, send=send, rate=rate, duration=args.duration)
            phase.server_cpu = cpu_seconds(pid) - cpu
            print(f"[{database}] {name}: done ({phase.sent} requests)", flush=True)
            phases.append(phase)
            await asyncio.sleep(1)
        return phases


def table(results: dict[str, list[Phase]]) -> str:
    head = (
        f"{'database':<9} {'endpoint':<31} {'rate/s':>6} {'sent':>5} {'errors':>6} "
        f"{'achieved/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99/base':>8} "
        f"{'cpu ms/req':>10}"
    )
    lines = [head, "-" * len(head)]
    for database, phases in results.items():
        base = phases[0].percentile_ms(0.99)
        for p in phases:
            errors = sum(p.errors.values())
            p99 = p.percentile_ms(0.99)
            lines.append(
                f"{database:<9} {p.name:<31} {p.rate:>6.0f} {p.sent:>5} {errors:>6} "
                f"{len(p.latencies) / p.wall:>10.1f} {p.percentile_ms(0.5):>8.1f} "
                f"{p99:>8.1f} {p.percentile_ms(1.0):>8.1f} {p99 / base:>8.1f} "
                f"{1000 * p.server_cpu / max(p.sent, 1):>10.2f}"
            )
            if p.errors:
                lines.append(f"{'':<9}   errors: {p.errors}")
            if p.max_send_lag > 0.005:
                lines.append(f"{'':<9}   client send lag up to {1000 * p.max_send_lag:.0f} ms")
    return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({cpu}), load average {load} at the start"


async def run_database(database: str, args: argparse.Namespace, log_dir: Path) -> list[Phase]:
    if database == "sqlite":
        args.database_url = f"sqlite+aiosqlite:///{log_dir / 'bench.db'}"
    else:
        if not args.pg_url:
            raise SystemExit("--pg-url (or STREAMSPACE_TEST_PG_URL) is needed for postgres")
        args.database_url = await create_postgres(args.pg_url)
    try:
        with api_process(database_url=args.database_url, log_dir=log_dir) as (url, pid):
            return await measure(url, pid, args, database=database)
    finally:
        if database == "postgres":
            await drop_postgres(args.pg_url, args.database_url)


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}", flush=True)
    results: dict[str, list[Phase]] = {}
    with tempfile.TemporaryDirectory(prefix="ss-bench-api-") as tmp:
        for database in args.databases:
            results[database] = await run_database(database, args, Path(tmp))
    print()
    print(
        f"open loop, {args.duration:.0f} s per endpoint, one `streamspace api` replica, "
        f"latency from each request's due time; p99/base = p99 over GET /health's p99; "
        "cpu ms/req = the api process's CPU time per request (independent of other load)"
    )
    print(table(results))
    print(
        f"\ntarget: p99 under {TARGET_P99_MS:.0f} ms at {args.rate:.0f} requests/s on one replica"
    )
    for database, phases in results.items():
        for p in phases[1:]:
            verdict = "meets" if p.percentile_ms(0.99) < TARGET_P99_MS else "MISSES"
            print(f"  {database:<9} {p.name:<31} {verdict} the target")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200, help="requests/s per endpoint")
    parser.add_argument("--login-rate", type=float, default=0, help="login rate (default: --rate)")
    parser.add_argument("--duration", type=float, default=15, help="seconds per endpoint")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--pg-url", default=os.environ.get("STREAMSPACE_TEST_PG_URL", ""))
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--sessions-per-user", type=int, default=10)
    parser.add_argument("--connections", type=int, default=100, help="client connection pool")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
