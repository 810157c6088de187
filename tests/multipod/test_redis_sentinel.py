"""Two real replicas on Redis through Sentinel: the master is SIGKILLed while replica A keeps
sending session commands cross-pod to an agent on replica B. Both replicas follow the promoted
replica without a restart, and every command completes exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, cluster, eventually, holds
from tests.support.sentinel import SentinelGroup

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
AGENT = "mem-sentinel-1"


@dataclass
class Sent:
    """One command as a client saw it: first attempt, refusals (503) retried, completion."""

    session: str
    action: str
    first_try: float
    refused: int
    done: float = 0.0

    @property
    def waited(self) -> float:
        return self.done - self.first_try


@dataclass
class CommandStream:
    """A client on replica A: start a session, wait for it, stop it, wait; again and again.
    A 503 (Redis unreachable, command not accepted) is retried, as a client would."""

    c: Cluster
    base: str
    headers: dict[str, str]
    sent: list[Sent] = field(default_factory=list)
    stopping: bool = False

    async def run(self) -> None:
        while not self.stopping:
            create = await self._issue("POST", "/api/v1/sessions", json={"template": "terminal"})
            await self._until(create, "running")
            stop = await self._issue("DELETE", f"/api/v1/sessions/{create.session}")
            await self._until(stop, "terminated")

    async def _issue(self, method: str, path: str, **kwargs: object) -> Sent:
        sent = Sent(session="", action=method, first_try=time.monotonic(), refused=0)
        while True:
            r = await self.c.call(self.base, method, path, self.headers, **kwargs)
            if r.status_code == 202:
                sent.session = r.json()["id"]
                self.sent.append(sent)
                return sent
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "agent_unreachable", r.text
            sent.refused += 1
            await asyncio.sleep(0.1)

    async def _until(self, sent: Sent, state: str) -> None:
        await self.c.wait_state(sent.session, state, self.headers, timeout=40)
        sent.done = time.monotonic()

    def completed_since(self, moment: float) -> int:
        return sum(1 for s in self.sent if s.done and s.first_try >= moment)


async def test_replicas_follow_a_sentinel_failover_and_lose_no_command(tmp_path: Path) -> None:
    group = SentinelGroup(tmp_path).start()
    try:
        await group.wait_ready()
        env = {
            "AGENTHUB_REDIS_ENABLED": "true",
            "REDIS_SENTINEL_HOSTS": group.hosts,
            "REDIS_PORT": "1",  # ignored with Sentinel: nothing listens there
        }
        async with cluster(tmp_path, replicas=2, redis=False, lb=False, extra_env=env) as c:
            await _failover_under_commands(c, group, tmp_path)
    finally:
        group.kill()


async def _failover_under_commands(c: Cluster, group: SentinelGroup, tmp_path: Path) -> None:
    a, b = c.replicas
    pids = [r.proc.pid for r in c.replicas if r.proc]
    for replica in (a, b):
        log = replica.log()
        assert f"Redis Sentinel: master mymaster at 127.0.0.1:{group.master.port}" in log
        assert "AgentHub Redis connected - multi-pod support enabled" in log
        assert "Redis cache enabled and connected" in log
    admin = await c.token(a.url)
    journal = tmp_path / "journal.txt"
    c.agent(AGENT, url=b.url, extra={"MEMORY_PLATFORM_JOURNAL": str(journal)})
    await c.approve(AGENT, admin)
    await c.wait_online(AGENT, admin, pod=b.pod)

    stream = CommandStream(c, a.url, admin)
    client = asyncio.create_task(stream.run())
    try:
        await eventually(holds(lambda: stream.completed_since(0) >= 4), what="commands before")
        killed = time.monotonic()
        group.master.kill()
        await eventually(
            lambda: _is(group.master_port(), group.replica.port), timeout=30, what="promotion"
        )
        promoted = time.monotonic()
        await eventually(
            holds(lambda: stream.completed_since(promoted) >= 4), timeout=40, what="commands after"
        )
    finally:
        stream.stopping = True
        await asyncio.wait_for(client, timeout=60)

    new_master = f"Redis Sentinel: master mymaster at 127.0.0.1:{group.replica.port}"
    for replica in (a, b):
        await replica.logged(new_master)
        await replica.logged("AgentHub Redis connected - multi-pod support enabled", times=2)
        ready = await eventually(
            lambda r=replica: _ready(c, r.url), what=f"{replica.pod} /ready with Redis"
        )
        assert ready["checks"]["redis"] == "ok"
    assert [r.proc.pid for r in c.replicas if r.proc and r.alive] == pids  # never restarted

    # Each command issued before, during and after the failover was applied exactly once.
    applied = Counter(tuple(line.split()) for line in journal.read_text().splitlines())
    expected = Counter(("start" if s.action == "POST" else "stop", s.session) for s in stream.sent)
    assert applied == expected
    listed = (await c.call(a.url, "GET", "/api/v1/sessions?include_terminated=true", admin)).json()
    assert {s["id"] for s in listed} == {s.session for s in stream.sent}  # a 503 made none
    assert {s["state"] for s in listed} == {"terminated"}
    during = [s for s in stream.sent if s.first_try <= promoted and s.done >= killed]
    assert during, "no command overlapped the failover"
    print(
        f"\nfailover: promotion {promoted - killed:.1f} s after SIGKILL; "
        f"{len(stream.sent)} commands; overlapping the failover: {len(during)}, "
        f"longest wait {max(s.waited for s in during):.1f} s, "
        f"refusals retried {sum(s.refused for s in stream.sent)}; "
        f"others waited at most {max(s.waited for s in stream.sent if s not in during):.2f} s"
    )


async def _ready(c: Cluster, base: str) -> dict[str, dict[str, str]] | None:
    r = await c.call(base, "GET", "/ready", {})
    ok = r.status_code == 200 and r.json()["status"] == "ok"  # not "degraded"
    return r.json() if ok else None  # type: ignore[no-any-return]


async def _is(value, expected) -> bool:  # type: ignore[no-untyped-def]
    return await value == expected
