"""Zero-downtime operations: Redis down for 20 s and back empty, and PostgreSQL stopped and
started again, with users working through them on two replicas (the agent on the first):
a loop starting and stopping sessions through each replica (through the second, its commands
cross replicas over Redis) and a viewer on each (local path and peer path) reading the
pattern stream. What a user would notice is asserted; the durations are printed."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from tests.support.cluster import Cluster, cluster, eventually
from tests.support.pattern import pattern_source
from tests.support.processes import RedisServer
from tests.support.services import private_postgres
from tests.support.traffic import Answer, Traffic, Viewer, progress, session_loop

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

AGENT = "outage-agent"
REDIS_OUTAGE = 20.0  # seconds, the deliberate length of the outage
POSTGRES_OUTAGE = 5.0
# Agents are live while their last recorded heartbeat is younger than interval x missed limit
# (90 s by default); heartbeats cannot be recorded while the database is out, so as in
# production the outage is shorter than that (here 10 s: heartbeats every second, as in
# every multi-replica test). A longer one makes them look silent until the first heartbeat
# written after it (up to a second): docs/operations.md.
LIVENESS = {"AGENT_HEARTBEAT_MISSED_LIMIT": "10"}
STALL = 8.0  # an open viewer stream giving nothing this long is stuck
FAST = 5.0  # a refusal takes less (on a loaded 2-core machine); a hang takes the client's 30


@dataclass(frozen=True)
class Probe:
    at: float  # sent
    ended: float  # answered
    pod: str
    status: int
    body: dict[str, object]


async def test_redis_down_20s_and_back_empty(tmp_path: Path) -> None:
    async with pattern_source() as vnc_port, cluster(tmp_path, replicas=2, lb=False) as c:
        a, b = c.replicas
        assert c.redis is not None
        admin, journal, viewed_sid = await _agent_on_first_replica(c, tmp_path, vnc_port)
        traffic, probes = Traffic(), list[Probe]()
        users = _users(c, admin, traffic, viewed_sid)
        prober = asyncio.create_task(_probe_ready(c, traffic, probes))
        try:
            await progress(traffic, users, "before the outage")
            down = time.monotonic()
            c.redis.kill()
            for replica in (a, b):
                await replica.logged("AgentHub Redis unavailable")
            noticed = time.monotonic()
            # the agent's own replica still serves it: sessions through `a` go on
            await progress(traffic, users, "during the outage")
            await eventually(
                lambda: _refused(traffic, b.url, "agent_unreachable"),
                what="a command through the other replica refused",
            )
            await asyncio.sleep(max(0.0, down + REDIS_OUTAGE - time.monotonic()))
            restarting = time.monotonic()  # probes answered before this saw no Redis
            c.redis = RedisServer(log_dir=tmp_path, port=c.redis.port).start()  # empty
            back = time.monotonic()
            connected = "AgentHub Redis connected - multi-pod support enabled"
            for replica in (a, b):
                await replica.logged(connected, times=2, timeout=30)
            keys = await eventually(lambda: _hub_keys(c), what="the guide's keys written again")
            await _retried_through(traffic, users, b.url, after=back)
            await progress(traffic, users, "after the outage")
        finally:
            ended = time.monotonic()
            traffic.stop.set()
            await asyncio.gather(*users, prober)

        _report(
            "redis",
            traffic,
            b.url,
            down=down,
            back=back,
            extra=f"outage {REDIS_OUTAGE:.0f} s",
        )
        await _no_command_lost_or_doubled(c, admin, traffic, journal, viewed_sid)
        # through the agent's replica nothing was refused; through the other, only commands
        # for the agent, cleanly, while Redis was away, and the client's retry got through
        assert not traffic.refused(a.url), traffic.refused(a.url)
        refused = traffic.refused(b.url)
        assert {(r.status, r.code) for r in refused} == {(503, "agent_unreachable")}, refused
        assert {r.what for r in refused} <= {"create", "delete"}
        recovered = _first_success(traffic, b.url, after=back)
        # (a request in flight at the stop counts: it ended after it)
        assert all(down < r.at + r.seconds < recovered for r in refused), (down, recovered, refused)
        assert max(r.seconds for r in refused) < FAST, refused
        # ready ("degraded") throughout, so no probe took a replica out of rotation
        assert {p.status for p in probes} == {200}, [p for p in probes if p.status != 200]
        for pod in (a.pod, b.pod):
            # probes wholly inside the outage (one answered while Redis came back may say ok)
            during = {
                p.body["status"]
                for p in probes
                if p.pod == pod and noticed < p.at and p.ended < restarting
            }
            assert during == {"degraded"}, (pod, during)
        assert keys == {
            f"agent:{AGENT}:pod": a.pod,
            f"agent:{AGENT}:connected": "1",
            "channels": {f"pod:{a.pod}:commands", f"pod:{b.pod}:commands"},
        }
        _streams_uninterrupted(traffic, since=down - 1, until=ended)


async def test_postgresql_restart(tmp_path: Path) -> None:
    async with (
        pattern_source() as vnc_port,
        private_postgres() as pg,
        cluster(tmp_path, replicas=2, lb=False, postgres=pg.url, extra_env=LIVENESS) as c,
    ):
        a, b = c.replicas
        admin, journal, viewed_sid = await _agent_on_first_replica(c, tmp_path, vnc_port)
        traffic, probes = Traffic(), list[Probe]()
        users = _users(c, admin, traffic, viewed_sid)
        prober = asyncio.create_task(_probe_ready(c, traffic, probes))
        pids = [r.proc.pid for r in c.replicas if r.proc]
        try:
            await progress(traffic, users, "before the restart")
            down = time.monotonic()
            await asyncio.to_thread(pg.stop)
            stopped = time.monotonic()
            for replica in (a, b):
                await eventually(
                    lambda r=replica: _refused(traffic, r.url, "database_unavailable"),
                    what=f"a request through {replica.pod} refused",
                )
            await asyncio.sleep(max(0.0, down + POSTGRES_OUTAGE - time.monotonic()))
            restarting = time.monotonic()
            await asyncio.to_thread(pg.start)
            back = time.monotonic()
            for replica in (a, b):
                await _retried_through(traffic, users, replica.url, after=back)
            await progress(traffic, users, "after the restart")
        finally:
            ended = time.monotonic()
            traffic.stop.set()
            await asyncio.gather(*users, prober)

        _report(
            "postgresql",
            traffic,
            b.url,
            down=down,
            back=back,
            extra=f"stopped {POSTGRES_OUTAGE:.0f} s (pg_ctl stop -m immediate, then start)",
        )
        assert [r.proc.pid for r in c.replicas if r.proc and r.alive] == pids  # no restart
        await _no_command_lost_or_doubled(c, admin, traffic, journal, viewed_sid)
        refused = traffic.refused()
        assert {(r.status, r.code) for r in refused} == {(503, "database_unavailable")}, refused
        assert max(r.seconds for r in refused) < FAST, refused
        for replica in (a, b):
            recovered = _first_success(traffic, replica.url, after=back)
            late = [
                r for r in traffic.refused(replica.url) if not down < r.at + r.seconds < recovered
            ]
            assert not late, (down, back, recovered, late)
        # /ready says "unavailable" while the database is, and recovers by itself
        assert {p.status for p in probes if stopped < p.at < restarting} == {503}
        assert {p.status for p in probes[-2:]} == {200}
        _streams_uninterrupted(traffic, since=down - 1, until=ended)


async def _agent_on_first_replica(
    c: Cluster, tmp_path: Path, vnc_port: int
) -> tuple[dict[str, str], Path, str]:
    """A memory-platform agent on the first replica (its VNC server the pattern source, its
    operations journaled), and a running session to view, started through the second."""
    a, b = c.replicas
    admin = await c.token(a.url)
    journal = tmp_path / "journal.txt"
    c.agent(
        AGENT,
        url=a.url,
        extra={
            "MEMORY_PLATFORM": f"vnc=127.0.0.1:{vnc_port}",
            "MEMORY_PLATFORM_JOURNAL": str(journal),
        },
    )
    await c.approve(AGENT, admin)
    await c.wait_online(AGENT, admin, pod=a.pod)
    r = await c.call(b.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
    assert r.status_code == 202, r.text
    await c.wait_state(r.json()["id"], "running", admin)
    return admin, journal, str(r.json()["id"])


def _users(
    c: Cluster, admin: dict[str, str], traffic: Traffic, viewed_sid: str
) -> list[asyncio.Task[None]]:
    """[loop through a, viewer through a, loop through b, viewer through b]: commands through
    b cross replicas, and b's viewer is relayed by a (the peer path)."""
    users = []
    for replica in c.replicas:
        users.append(
            asyncio.create_task(
                session_loop(replica.url, admin, traffic, retry=True, start_timeout=60)
            )
        )
        users.append(
            asyncio.create_task(
                traffic.view(replica.url, viewed_sid, admin, stall=STALL, pause=0.02)
            )
        )
    return users


async def _probe_ready(c: Cluster, traffic: Traffic, probes: list[Probe]) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        while not traffic.stop.is_set():
            for replica in c.replicas:
                started = time.monotonic()
                r = await http.get(f"{replica.url}/ready")
                probes.append(
                    Probe(started, time.monotonic(), replica.pod, r.status_code, r.json())
                )
            await asyncio.sleep(0.25)


async def _retried_through(
    traffic: Traffic, users: list[asyncio.Task[None]], via: str, *, after: float
) -> None:
    """A command through `via` asked after `after` succeeded (the client's retry got in)."""

    async def succeeded() -> bool:
        for task in users:
            if task.done():
                task.result()
        return any(
            a.via == via and a.ok and a.what != "get" and a.at > after for a in traffic.answers
        )

    await eventually(succeeded, timeout=60, what=f"a command through {via} after the outage")


async def _refused(traffic: Traffic, via: str, code: str) -> bool:
    return any(r.code == code for r in traffic.refused(via))


def _first_success(traffic: Traffic, via: str, *, after: float) -> float:
    """When the first command through `via` asked after `after` was asked (it succeeded)."""
    return min(
        a.at for a in traffic.answers if a.via == via and a.ok and a.what != "get" and a.at > after
    )


async def _hub_keys(c: Cluster) -> dict[str, object] | None:
    """The guide's AgentHub keys and channels in Redis DB 1, once all are there."""
    assert c.redis is not None
    client = aioredis.Redis(host="127.0.0.1", port=c.redis.port, db=1, decode_responses=True)
    try:
        pod_key, connected_key = f"agent:{AGENT}:pod", f"agent:{AGENT}:connected"
        pod, connected = await client.get(pod_key), await client.get(connected_key)
        ttl = await client.ttl(connected_key)
        channels = {ch for ch in await client.pubsub_channels("pod:*")}
    finally:
        await client.aclose()
    if pod is None or connected is None or len(channels) < 2:
        return None
    assert 0 < ttl <= 300, ttl
    return {pod_key: pod, connected_key: connected, "channels": channels}


async def _no_command_lost_or_doubled(
    c: Cluster, admin: dict[str, str], traffic: Traffic, journal: Path, viewed_sid: str
) -> None:
    """Every session the users went through started and stopped exactly once on the
    platform, nothing else was started, and the viewed session still runs."""
    assert traffic.sessions
    for sid in traffic.sessions:
        await c.wait_state(sid, "terminated", admin)
    applied = Counter(tuple(line.split()) for line in journal.read_text().splitlines())
    expected = Counter({("start", viewed_sid): 1})
    for sid in traffic.sessions:
        expected[("start", sid)] = expected[("stop", sid)] = 1
    assert applied == expected
    assert await c.session_state(c.replicas[0].url, viewed_sid, admin) == "running"


def _streams_uninterrupted(traffic: Traffic, *, since: float, until: float) -> None:
    """Each viewer's socket lived throughout, every byte the pattern's (read_pattern checks),
    and no pause in its reads as long as STALL."""
    for viewer in traffic.viewers:
        assert not viewer.drops, (viewer.base, viewer.drops)
        gap = viewer.longest_gap(since, until)
        assert gap < STALL, (viewer.base, gap)


def _report(name: str, traffic: Traffic, via: str, *, down: float, back: float, extra: str) -> None:
    """The figures, printed (pytest -s): what was refused when, relative to the stop."""
    kinds: dict[tuple[str, str, str], list[Answer]] = {}
    for r in traffic.refused():
        kinds.setdefault((r.via.rsplit(":", 1)[1], r.what, r.code), []).append(r)
    refusals = {
        kind: f"{len(rs)} from {rs[0].at - down:.2f} to {rs[-1].at + rs[-1].seconds - down:.2f} s"
        for kind, rs in kinds.items()
    }
    after = [a.at for a in traffic.answers if a.via == via and a.ok and a.what != "get"]
    recovered = min((t for t in after if t > back), default=float("nan")) - back
    slowest = max(a.seconds for a in traffic.answers)
    gaps = [_gap(v, down) for v in traffic.viewers]
    print(
        f"\n[{name}] {extra}; back at {back - down:.2f} s; refused: {refusals}; "
        f"first command through {via.rsplit(':', 1)[1]} after it {recovered:.2f} s later; "
        f"slowest answer {slowest:.3f} s; {len(traffic.sessions)} sessions cycled; "
        f"viewers' longest gap {gaps} s, drops {[dict(v.drops) for v in traffic.viewers]}"
    )


def _gap(viewer: Viewer, down: float) -> str:
    """The viewer's longest pause between reads after the stop, and when it began."""
    reads = [t for t in viewer.reads if t > down]
    pauses = [(b - a, a) for a, b in itertools.pairwise([down, *reads])] or [(0.0, down)]
    length, began = max(pauses)
    return f"{length:.2f} s from {began - down:.2f} s"


def _seconds(answers: list[Answer]) -> list[float]:
    return [a.seconds for a in answers] or [0.0]
