"""AgentHub at scale: N simulated agents on 3 `streamspace api` replicas sharing a private Redis
and a fresh PostgreSQL database. Prints memory per connected agent, heartbeat CPU cost, and
admin ping round trips (local vs cross-pod) against a plain Redis PUBLISH->subscriber baseline.

    .venv/bin/python bench/hub.py                        # 1,000 then 5,000 agents
    .venv/bin/python bench/hub.py --agents 1000 --log-level INFO --rates 0
    .venv/bin/python bench/hub.py --agents 5000 --rates 1000 --batch 25  # fleet pings
    .venv/bin/python bench/hub.py --agents 1000 --rates 1000 --redis-client lean,library

`--redis-client lean,library` runs each level with resp.py's lean connections and again with
redis-py for them (STREAMSPACE_LEAN_REDIS_CLIENT=false), and prints the pair side by side.

Agents are created approved, with known keys, directly in the database (AgentRecord with
api_key_hash = sha256 hex of the key, as services/agents.py hash_key stores it): enrolling
thousands through the HTTP approval flow would measure the approval flow, not the hub. They live
in 2 client processes (bench/hub_agents.py), raw WebSocket clients, never in the replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.processes import ApiReplica, RedisServer
from tests.support.services import fresh_postgres

from streamspace.control_plane.db.records import AgentRecord
from streamspace.control_plane.services.agents import hash_key

REPLICAS = 3
CLIENTS = 2
POOL = 32  # keep-alive connections per replica for the ping driver
ADMIN_PASSWORD = "bench-admin-password-1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: every figure is a measured sample."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else float("nan")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def pid_of(proc: Any) -> int:
    assert proc.proc is not None
    return int(proc.proc.pid)


# -- the cluster ------------------------------------------------------------------------------


async def seed_agents(db_url: str, count: int) -> list[tuple[str, str, int]]:
    """Approved agents with known keys, spread evenly over the replicas."""
    agents = [
        (f"bench-{i:05d}", "ssa_" + secrets.token_hex(32), i % REPLICAS) for i in range(count)
    ]
    engine = create_async_engine(db_url)
    rows = [
        {
            "id": agent_id,
            "platform": "memory",
            "region": "default",
            "max_sessions": 10,
            "capacity": {"maxSessions": 10},
            "agent_metadata": {},
            "approval_status": "approved",
            "api_key_hash": hash_key(key),
            "key_delivered": True,
            "status": "offline",
            "epoch": 0,
            "draining": False,
            "active_sessions": 0,
            "approved_by": "bench",
        }
        for agent_id, key, _ in agents
    ]
    async with engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            await conn.execute(insert(AgentRecord), rows[start : start + 1000])
    await engine.dispose()
    return agents


def replica_env(
    *, db_url: str, redis_port: int, log_level: str, db_idle: int, redis_client: str = "lean"
) -> dict[str, str]:
    return {
        "STREAMSPACE_LEAN_REDIS_CLIENT": str(redis_client == "lean").lower(),
        "DATABASE_URL": db_url,
        "STREAMSPACE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AGENTHUB_REDIS_ENABLED": "true",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_port),
        "LOG_LEVEL": log_level,
        "DB_MAX_OPEN_CONNS": "20",
        "DB_MAX_IDLE_CONNS": str(db_idle),
    }


class Client:
    """One simulated-agent process, ordered by JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *, setup: dict[str, Any], log: Path) -> Client:
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(Path(__file__).with_name("hub_agents.py")),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                limit=64 << 20,
            )
        client = cls(proc)
        await client.send(setup)
        return client

    async def send(self, order: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(order).encode() + b"\n")
        await self.proc.stdin.drain()

    async def ask(self, order: dict[str, Any], *, limit: float = 600) -> dict[str, Any]:
        await self.send(order)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), limit)
        if not line:
            raise RuntimeError("simulated-agent process exited; see its log")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def ask_all(clients: list[Client], order: dict[str, Any]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(c.ask(order) for c in clients)))


# -- a minimal keep-alive HTTP/1.1 client (cheap enough to drive 1,000 requests/s) -----------


class HttpConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> HttpConn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b""):  # type: ignore[no-untyped-def]
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def login(port: int) -> dict[str, str]:
    conn = await HttpConn.open(port)
    body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode()
    status, raw = await conn.request(
        "POST", "/api/v1/auth/login", {"Content-Type": "application/json"}, body
    )
    conn.close()
    assert status == 200, raw
    return {"Authorization": f"Bearer {json.loads(raw)['access_token']}"}


@dataclass
class PingRun:
    samples: list[tuple[str, float, float]]  # agent, sent (monotonic), answered (monotonic)
    errors: Counter[int | str]
    late: int
    wall: float
    replica_rtt: list[float] = field(default_factory=list)  # ms, each command as its replica saw it


async def ping_run(
    *,
    replicas: list[ApiReplica],
    agents: list[tuple[str, str, int]],
    cross: bool,
    rate: int,
    seconds: float,
    headers: dict[str, str],
    batch: int = 1,
) -> PingRun:
    """Open loop at `rate` pings/s: agent i is pinged through its own replica (local) or the
    next one (cross-pod). With `batch` > 1, the pings go `batch` at a time in one
    POST /api/v1/admin/agents/ping to a replica, each agent's still its own routed command;
    every ping of a batch counts from the request's send to its response (an upper bound)."""
    pools: list[asyncio.Queue[HttpConn]] = []
    for replica in replicas:
        pool: asyncio.Queue[HttpConn] = asyncio.Queue()
        for _ in range(POOL):
            pool.put_nowait(await HttpConn.open(replica.port))
        pools.append(pool)
    run = PingRun(samples=[], errors=Counter(), late=0, wall=0.0)

    async def one(agent_ids: list[str], via: int) -> None:
        if pools[via].empty():  # every connection busy: saturated, do not queue without end
            run.errors["skipped"] += len(agent_ids)
            return
        conn = await pools[via].get()
        if batch == 1:
            path, body = f"/api/v1/admin/agents/{agent_ids[0]}/ping?timeout=5", b""
        else:
            path, body = (
                "/api/v1/admin/agents/ping?timeout=5",
                json.dumps({"agents": agent_ids}).encode(),
            )
        sent = time.monotonic()
        try:
            status, raw = await asyncio.wait_for(
                conn.request("POST", path, {**headers, "Content-Type": "application/json"}, body),
                10,
            )
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            conn.close()  # not returned to the pool
            run.errors["client timeout"] += len(agent_ids)
            return
        done = time.monotonic()
        pools[via].put_nowait(conn)
        if status != 200:
            if not run.errors:
                print(f"  first error: {status} {raw[:300]!r}")
            run.errors[status] += len(agent_ids)
            return
        if batch == 1:
            run.samples.append((agent_ids[0], sent, done))
            return
        for result in json.loads(raw)["results"]:
            if "error" in result:
                run.errors[result["error"]["code"]] += 1
            else:
                run.samples.append((result["agentId"], sent, done))
                run.replica_rtt.append(float(result["rttMs"]))

    # the agents each replica reaches locally, and those it reaches cross-pod
    reach = [
        [a for a, _, home in agents if (home != via if cross else home == via)]
        for via in range(REPLICAS)
    ]
    total, tasks, began = int(rate * seconds / batch), [], time.monotonic()
    for i in range(total):
        via = i % REPLICAS
        pool_ids = reach[via]
        picked = [pool_ids[(i * batch + k) % len(pool_ids)] for k in range(batch)]
        delay = began + i * batch / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            run.late += 1
        tasks.append(asyncio.create_task(one(picked, via)))
    await asyncio.gather(*tasks)
    run.wall = time.monotonic() - began
    for pool in pools:
        while not pool.empty():
            pool.get_nowait().close()
    return run


def ping_report(run: PingRun, receipts: dict[str, list[float]], label: str) -> dict[str, float]:
    rtt = [(done - sent) * 1000 for _, sent, done in run.samples]
    there: list[float] = []
    back: list[float] = []
    for agent_id, sent, done in run.samples:
        hit = [t for t in receipts.get(agent_id, []) if sent <= t <= done]
        if hit:
            there.append((hit[0] - sent) * 1000)
            back.append((done - hit[0]) * 1000)
    figures = {
        "p50": percentile(rtt, 0.5),
        "p99": percentile(rtt, 0.99),
        "to_agent_p50": percentile(there, 0.5),
        "to_agent_p99": percentile(there, 0.99),
        "back_p50": percentile(back, 0.5),
        "back_p99": percentile(back, 0.99),
        "rate": len(run.samples) / run.wall,
        "cmd_p50": percentile(run.replica_rtt, 0.5),
        "cmd_p99": percentile(run.replica_rtt, 0.99),
    }
    print(
        f"  {label:<10} ok {len(run.samples):>6}  errors {dict(run.errors) or 0}  late {run.late}  "
        f"achieved {figures['rate']:7.1f}/s  round trip p50 {figures['p50']:6.2f} ms "
        f"p99 {figures['p99']:6.2f} ms  | request->agent p50 {figures['to_agent_p50']:6.2f} "
        f"p99 {figures['to_agent_p99']:6.2f} ms | agent->response p50 {figures['back_p50']:6.2f} "
        f"p99 {figures['back_p99']:6.2f} ms"
    )
    if run.replica_rtt:
        print(
            f"  {'':<10} each command's own round trip, as its replica timed it (hub -> agent -> "
            f"pong back): p50 {figures['cmd_p50']:6.2f} ms p99 {figures['cmd_p99']:6.2f} ms"
        )
    return figures


async def redis_baseline(port: int, *, rate: int, seconds: float) -> dict[str, float]:
    """PUBLISH -> subscriber (redis-py pub/sub, as the hub uses it) on the same Redis."""
    pub = aioredis.Redis(host="127.0.0.1", port=port)
    sub = aioredis.Redis(host="127.0.0.1", port=port).pubsub(ignore_subscribe_messages=True)
    await sub.subscribe("bench:baseline")
    deltas: list[float] = []
    total = int(rate * seconds)

    async def listen() -> None:
        while len(deltas) < total:
            message = await sub.get_message(timeout=1.0)
            if message is not None:
                deltas.append((time.monotonic() - float(message["data"])) * 1000)

    listener = asyncio.create_task(listen())
    began = time.monotonic()
    for i in range(total):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await pub.publish("bench:baseline", repr(time.monotonic()))
    await asyncio.wait_for(listener, 10)
    await sub.aclose()  # type: ignore[no-untyped-call]
    await pub.aclose()
    return {"p50": percentile(deltas, 0.5), "p99": percentile(deltas, 0.99)}


# -- one level: N agents ----------------------------------------------------------------------


@dataclass
class Level:
    agents: int
    redis_client: str
    kib_per_agent: list[float]
    hb_ms: list[float]
    projected_pct: list[float]
    pings: dict[str, dict[str, float]]
    baseline: dict[str, float]


async def measure_memory(replicas: list[ApiReplica], clients: list[Client], n: int) -> list[float]:
    rss0 = [rss_kib(pid_of(r)) for r in replicas]
    answers = await ask_all(clients, {"op": "connect"})
    connected = sum(a["connected"] for a in answers)
    print(
        f"  connected {connected}/{n} agents in {max(a['seconds'] for a in answers):.1f} s "
        f"({sum(a['failed'] for a in answers)} failed)"
    )
    await asyncio.sleep(3)  # first heartbeats applied, buffers settled
    rss1 = [rss_kib(pid_of(r)) for r in replicas]
    per = [(after - before) / (n / REPLICAS) for before, after in zip(rss0, rss1, strict=True)]
    for r, before, after, kib in zip(replicas, rss0, rss1, per, strict=True):
        print(
            f"  {r.pod}: RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB = "
            f"{kib:.1f} KiB per agent"
        )
    return per


async def measure_heartbeats(
    *, replicas: list[ApiReplica], redis: RedisServer, clients: list[Client], args: Any, n: int
) -> tuple[list[float], list[float]]:
    pids = [pid_of(r) for r in replicas] + [pid_of(redis)]
    cpu0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
    await ask_all(clients, {"op": "pause", "seconds": args.idle_seconds})
    idle = [(cpu_seconds(p) - c) / (time.monotonic() - t0) for p, c in zip(pids, cpu0, strict=True)]
    cpu0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
    order = {"op": "heartbeat", "interval": args.hb_interval, "seconds": args.hb_seconds}
    answers = await ask_all(clients, order)
    await asyncio.sleep(1.0)  # let the replicas drain what was sent
    wall = time.monotonic() - t0
    net = [cpu_seconds(p) - c - rate * wall for p, c, rate in zip(pids, cpu0, idle, strict=True)]
    sent = [sum(a["sent"].get(str(i), 0) for a in answers) for i in range(REPLICAS)]
    hb_ms = [net[i] * 1000 / max(sent[i], 1) for i in range(REPLICAS)]
    on_each = n / REPLICAS
    projected = [on_each / 30 * ms / 10 for ms in hb_ms]  # % of one core at 30 s
    print(
        f"  heartbeats every {args.hb_interval:g} s for {args.hb_seconds:g} s "
        f"(idle CPU subtracted: {', '.join(f'{x * 100:.1f}%' for x in idle[:REPLICAS])})"
    )
    for r, count, ms, pct in zip(replicas, sent, hb_ms, projected, strict=True):
        print(
            f"  {r.pod}: {count} heartbeats ({count / wall:.0f}/s), {ms:.3f} CPU-ms each; "
            f"at 30 s for {on_each:.0f} agents: {pct:.2f}% of a core"
        )
    print(f"  redis: {net[-1] * 1000 / max(sum(sent), 1):.3f} CPU-ms per heartbeat")
    return hb_ms, projected


async def measure_pings(
    *,
    replicas: list[ApiReplica],
    clients: list[Client],
    agents: list[tuple[str, str, int]],
    args: Any,
    headers: dict[str, str],
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    pids = [pid_of(r) for r in replicas]
    for rate in args.rates:
        for cross in (False, True):
            label = f"{'cross-pod' if cross else 'local'}@{rate}"
            cpu0 = sum(cpu_seconds(p) for p in pids)
            run = await ping_run(
                replicas=replicas,
                agents=agents,
                cross=cross,
                rate=rate,
                seconds=args.ping_seconds,
                headers=headers,
                batch=args.batch,
            )
            cpu_ms = (sum(cpu_seconds(p) for p in pids) - cpu0) * 1000 / max(len(run.samples), 1)
            receipts: dict[str, list[float]] = {}
            for answer in await ask_all(clients, {"op": "receipts"}):
                receipts |= answer["receipts"]
            results[label] = ping_report(run, receipts, label)
            results[label]["cpu_ms"] = cpu_ms
            print(f"  {'':<10} replicas' CPU {cpu_ms:.2f} ms per ping (all 3, incl. HTTP+auth)")
    return results


async def run_level(args: Any, n: int, redis_client: str = "lean") -> Level:
    print(
        f"\n== {n} agents on {REPLICAS} replicas (LOG_LEVEL={args.log_level}, "
        f"{redis_client} Redis client) =="
    )
    tmp = Path(tempfile.mkdtemp(prefix="hubbench-"))
    replicas: list[ApiReplica] = []
    clients: list[Client] = []
    async with fresh_postgres(args.pg_url) as db_url:
        redis = RedisServer(log_dir=tmp).start()
        try:
            env = replica_env(
                db_url=db_url,
                redis_port=redis.port,
                log_level=args.log_level,
                db_idle=args.db_idle,
                redis_client=redis_client,
            )
            for i in range(REPLICAS):
                replica = ApiReplica(pod=f"bench-api-{i}", env=env, log_dir=tmp)
                if args.profile and i == 0:
                    replica.args = [sys.executable, "-m", "cProfile", "-o", str(tmp / "api.prof")]
                    replica.args += [str(Path(sys.executable).with_name("streamspace")), "api"]
                replicas.append(replica.start())
            agents = await seed_agents(db_url, n)
            headers = await login(replicas[0].port)
            await ping_run(  # warm every replica's request path (503: nobody connected)
                replicas=replicas, agents=agents, cross=False, rate=50, seconds=1, headers=headers
            )
            await asyncio.sleep(1)
            urls = [r.url for r in replicas]
            for c in range(CLIENTS):
                setup = {
                    "urls": urls,
                    "agents": agents[c::CLIENTS],
                    "background": args.hb_background,
                }
                clients.append(await Client.start(setup=setup, log=tmp / f"client-{c}.log"))
            per_agent = await measure_memory(replicas, clients, n)
            hb_ms, projected = await measure_heartbeats(
                replicas=replicas, redis=redis, clients=clients, args=args, n=n
            )
            pings = await measure_pings(
                replicas=replicas, clients=clients, agents=agents, args=args, headers=headers
            )
            rate = max(args.rates) if args.rates else 1000
            baseline = await redis_baseline(redis.port, rate=rate, seconds=args.ping_seconds)
            print(
                f"  baseline   redis PUBLISH->subscriber @{rate}/s: p50 {baseline['p50']:.2f} ms "
                f"p99 {baseline['p99']:.2f} ms"
            )
            for r in replicas:
                if not r.alive:
                    raise RuntimeError(f"{r.pod} died: {r.log()[-2000:]}")
            if args.profile:
                for client in clients:
                    await client.stop()
                replicas[0].stop(signal.SIGINT, timeout=60)  # cProfile writes its file on exit
                print_profile(tmp / "api.prof")
            return Level(n, redis_client, per_agent, hb_ms, projected, pings, baseline)
        finally:
            for client in clients:
                await client.stop()
            for proc in [*replicas, redis]:
                proc.kill()
            if args.keep_logs:
                print(f"  logs in {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)


def summary(levels: list[Level], args: Any) -> None:
    print(f"\n== summary ({os.cpu_count()} CPUs, {cpu_model()}) ==")
    for lv in levels:
        worst = max(lv.kib_per_agent)
        print(
            f"{lv.agents:>5} agents ({lv.redis_client} Redis client): memory {worst:.1f} KiB/agent "
            f"(max of replicas; target < 64: "
            f"{'met' if worst < 64 else 'MISSED'}); heartbeat {max(lv.hb_ms):.3f} CPU-ms, "
            f"{max(lv.projected_pct):.2f}% of a core per replica at 30 s"
        )
        base = lv.baseline
        for label, f in lv.pings.items():
            verdict = ""
            p99 = f["p99"]
            if f.get("cmd_p99") == f.get("cmd_p99"):  # batched: each command's own round trip
                p99 = f["cmd_p99"]
                verdict = f"; per command p50 {f['cmd_p50']:.2f} ms p99 {p99:.2f} ms"
            if label.startswith("cross-pod@1000"):
                verdict += f" (target p99 < 10 ms: {'met' if p99 < 10 else 'MISSED'})"
            print(
                f"   {label:<15} p50 {f['p50']:6.2f} ms = {f['p50'] / base['p50']:5.1f}x redis hop, "
                f"p99 {f['p99']:6.2f} ms = {f['p99'] / base['p99']:5.1f}x, "
                f"{f['rate']:.0f}/s{verdict}"
            )


def compare_clients(levels: list[Level]) -> None:
    """The RESP client's pair: each level's lean run against its redis-py run."""
    by = {(lv.agents, lv.redis_client): lv for lv in levels}
    for (n, client), lean in by.items():
        library = by.get((n, "library"))
        if client != "lean" or library is None:
            continue
        print(f"\n== lean RESP client vs redis-py, {n} agents (saving of the lean one) ==")
        hb, hb_lib = max(lean.hb_ms), max(library.hb_ms)
        print(
            f"  heartbeat CPU-ms (worst replica) {hb:.3f} vs {hb_lib:.3f} ({1 - hb / hb_lib:.0%})"
        )
        for label, f in lean.pings.items():
            g = library.pings.get(label)
            if g is None:
                continue
            print(
                f"  {label:<15} p99 {f['p99']:6.2f} vs {g['p99']:6.2f} ms ({1 - f['p99'] / g['p99']:.0%}),"
                f" replicas' CPU {f['cpu_ms']:.2f} vs {g['cpu_ms']:.2f} ms per ping "
                f"({1 - f['cpu_ms'] / g['cpu_ms']:.0%})"
            )


def print_profile(path: Path) -> None:
    import pstats

    print("  cProfile of bench-api-0 (whole run):")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1000,5000", help="comma-separated agent counts")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "STREAMSPACE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5442/postgres"
        ),
        help="PostgreSQL server; a fresh database is created and dropped",
    )
    parser.add_argument("--log-level", default="WARNING", help="the replicas' LOG_LEVEL")
    parser.add_argument("--hb-interval", type=float, default=5.0, help="accelerated, seconds")
    parser.add_argument("--hb-seconds", type=float, default=20.0, help="heartbeat window")
    parser.add_argument(
        "--hb-background",
        type=float,
        default=30.0,
        help="agents' heartbeat interval outside the heartbeat window, seconds (0: none)",
    )
    parser.add_argument("--idle-seconds", type=float, default=8.0, help="idle CPU window")
    parser.add_argument("--rates", default="50,200,1000", help="pings/s, comma-separated; 0: none")
    parser.add_argument(
        "--batch", type=int, default=1, help="pings per request (POST /api/v1/admin/agents/ping)"
    )
    parser.add_argument("--ping-seconds", type=float, default=10.0, help="per rate and route")
    parser.add_argument("--db-idle", type=int, default=20, help="replicas' DB_MAX_IDLE_CONNS")
    parser.add_argument(
        "--redis-client",
        default="lean",
        help="lean, library, or lean,library: the AgentHub's hot-path Redis connections",
    )
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile replica 0")
    parser.add_argument("--max-seconds", type=float, default=1500, help="give up after this")
    args = parser.parse_args(argv)
    args.agents = [int(x) for x in args.agents.split(",")]
    args.rates = [int(x) for x in args.rates.split(",") if int(x) > 0]
    args.redis_client = args.redis_client.split(",")
    if not set(args.redis_client) <= {"lean", "library"}:
        parser.error("--redis-client takes lean, library or both")
    return args


async def main(argv: list[str]) -> None:
    args = parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()}")
    async with asyncio.timeout(args.max_seconds):
        levels = [
            await run_level(args, n, client) for n in args.agents for client in args.redis_client
        ]
    summary(levels, args)
    compare_clients(levels)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
