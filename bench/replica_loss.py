"""Losing a control-plane replica, as users feel it: three replicas behind the shipped haproxy
config (deploy/haproxy/haproxy.cfg), one agent connected through it, clients calling the API
and pinging the agent all along, and two viewers reading a session's stream (the session's
VNC server is a pattern source, every byte checked): one through the load balancer (when its
socket closes it reconnects at the viewer page's pace) and one on a replica that stays, whose
stream is resumed when the agent moves (its socket should never close; it only pauses). Each run
kills the replica holding the agent (SIGKILL) or stops it (SIGTERM, a scale-down), and prints,
per scenario, how long until the API answers every request again, until the agent answers a
command again, until the first viewer gets bytes again and how long the second one's stream
paused (p50 and max over the runs), and how many requests failed and viewer sockets closed.

    PYTHONPATH=. .venv/bin/python bench/replica_loss.py [--runs 5]

The baseline in the same run is haproxy's own failure detection (`inter 500ms fall 2`): the
time a load balancer needs to mark a dead server down by health checks alone. Targets (issue
19): replica loss under 1 s for the agent and the API; a graceful scale-down fails no request.
Needs PostgreSQL and Redis as `make test` starts them. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import signal
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.cluster import Cluster, cluster
from tests.support.pattern import pattern_source, read_pattern

HEALTH_CHECK_DOWN = 2 * 0.5  # fall 2 x inter 500ms in the shipped config


@dataclass
class Probe:
    """Calls that run until stopped, each recording when it started and whether it worked."""

    results: list[tuple[float, bool]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def record(self, started: float, ok: bool, what: str = "") -> None:
        self.results.append((started, ok))
        if not ok:
            self.failures[what] += 1

    def back_after(self, at: float) -> float:
        """Seconds from `at` until the start of the first call that worked after the last one
        that failed (0: none failed): when the service worked again, to within one call."""
        failed = [t for t, ok in self.results if t >= at - 5 and not ok]
        if not failed:
            return 0.0
        last = max(failed)
        return max(0.0, min(t for t, ok in self.results if ok and t > last) - at)

    def longest_pause(self, at: float) -> float:
        """The longest time between the starts of two calls in a row from 1 s before `at` on
        (a call that hangs and then works shows here, not in `back_after`)."""
        starts = sorted(t for t, _ in self.results if t >= at - 1)
        return max((b - a for a, b in itertools.pairwise(starts)), default=0.0)


async def api_client(c: Cluster, admin: dict[str, str], probe: Probe, stop: asyncio.Event) -> None:
    assert c.lb is not None
    async with httpx.AsyncClient(base_url=c.lb.url, timeout=5) as http:
        while not stop.is_set():
            started = time.monotonic()
            try:
                r = await http.get("/api/v1/templates", headers=admin)
                probe.record(started, r.status_code == 200, str(r.status_code))
            except httpx.HTTPError as exc:
                probe.record(started, False, type(exc).__name__)


async def agent_pinger(
    c: Cluster, admin: dict[str, str], agent_id: str, probe: Probe, stop: asyncio.Event
) -> None:
    """A ping to the agent every 20 ms, open loop (each may take up to 1 s), so when the
    agent worked again is known to within 20 ms and one slow ping hides no other."""
    assert c.lb is not None
    async with httpx.AsyncClient(base_url=c.lb.url, timeout=5) as http:

        async def ping() -> None:
            started = time.monotonic()
            try:
                r = await http.post(
                    f"/api/v1/admin/agents/{agent_id}/ping?timeout=1", headers=admin
                )
                probe.record(started, r.status_code == 200, str(r.status_code))
            except httpx.HTTPError as exc:
                probe.record(started, False, type(exc).__name__)

        pings = []
        while not stop.is_set():
            pings.append(asyncio.create_task(ping()))
            await asyncio.sleep(0.02)
        await asyncio.gather(*pings)


async def one_run(tmp: Path, sig: signal.Signals, run: int) -> dict[str, float]:
    log_dir = tmp / f"{sig.name}-{run}"
    log_dir.mkdir()
    env = {"LOG_LEVEL": "WARNING"}
    async with (
        pattern_source() as vnc_port,
        cluster(log_dir, replicas=3, redis=True, lb=True, shipped_lb=True, extra_env=env) as c,
    ):
        assert c.lb is not None
        admin = await c.token(c.lb.url)
        c.agent(
            "replica-loss",
            url=c.lb.url,
            extra={"LOG_LEVEL": "WARNING", "MEMORY_PLATFORM": f"vnc=127.0.0.1:{vnc_port}"},
        )
        await c.approve("replica-loss", admin)
        holder = c.replica((await c.wait_online("replica-loss", admin))["pod_name"])
        r = await c.call(c.lb.url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"})
        sid = r.json()["id"]
        await c.wait_state(sid, "running", admin)
        api, agent, viewer, stop = Probe(), Probe(), Probe(), asyncio.Event()
        resumed = Probe()
        other = next(r for r in c.replicas if r is not holder)
        tasks = [asyncio.create_task(api_client(c, admin, api, stop)) for _ in range(4)]
        tasks.append(asyncio.create_task(agent_pinger(c, admin, "replica-loss", agent, stop)))
        tasks.append(
            asyncio.create_task(
                read_pattern(
                    c.lb.url,
                    sid,
                    admin,
                    stop=stop,
                    chunk=4096,
                    record=lambda started, n, failed: viewer.record(started, n > 0, failed),
                )
            )
        )
        tasks.append(
            asyncio.create_task(
                read_pattern(
                    other.url,
                    sid,
                    admin,
                    stop=stop,
                    chunk=4096,
                    record=lambda started, n, failed: resumed.record(started, n > 0, failed),
                )
            )
        )
        await asyncio.sleep(2)  # steady traffic before the loss (a load phase, not a wait)
        at = time.monotonic()
        holder.send_signal(sig)
        await asyncio.sleep(5)  # traffic through and after the loss
        stop.set()
        await asyncio.gather(*tasks)
        return {
            "api": api.back_after(at),
            "agent": agent.back_after(at),
            "api_failed": sum(api.failures.values()),
            "api_total": len(api.results),
            "api_failures": dict(api.failures),  # type: ignore[dict-item]
            "agent_failed": sum(agent.failures.values()),
            "agent_failures": dict(agent.failures),  # type: ignore[dict-item]
            "viewer": viewer.back_after(at),
            "viewer_failed": sum(viewer.failures.values()),
            "resumed_pause": resumed.longest_pause(at),
            "resumed_failed": sum(resumed.failures.values()),
        }


def report(name: str, runs: list[dict[str, float]]) -> None:
    def stat(key: str) -> str:
        values = [r[key] * 1000 for r in runs]
        return f"p50 {statistics.median(values):6.0f} ms  max {max(values):6.0f} ms"

    failed = sum(int(r["api_failed"]) for r in runs)
    total = sum(int(r["api_total"]) for r in runs)
    print(f"{name}")
    print(f"  API answers every request again after      {stat('api')}")
    print(f"  the agent answers a command again after    {stat('agent')}")
    print(f"  the viewer gets bytes again after          {stat('viewer')}")
    print(f"  a viewer on a replica that stays paused    {stat('resumed_pause')}")
    print(
        "  viewer sockets closed: through the load balancer "
        f"{sum(int(r['viewer_failed']) for r in runs)}, on a replica that stays "
        f"{sum(int(r['resumed_failed']) for r in runs)}"
    )
    print(
        f"  API requests failed: {failed} of {total} {[r['api_failures'] for r in runs]}; "
        "agent pings failed: "
        f"{sum(int(r['agent_failed']) for r in runs)}"
    )


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-replica-loss-"))
    print(
        f"{args.runs} runs per scenario; {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; baseline: haproxy marks a dead server down by health "
        f"checks after {HEALTH_CHECK_DOWN * 1000:.0f} ms\n"
    )
    for sig, name in (
        (signal.SIGKILL, "replica loss (SIGKILL of the agent's replica)"),
        (signal.SIGTERM, "scale-down (SIGTERM of the agent's replica)"),
    ):
        runs = [await one_run(tmp, sig, i) for i in range(args.runs)]
        report(name, runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
