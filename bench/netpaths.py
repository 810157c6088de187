"""Hand-written networking against the library path it replaces, in one run: a cross-replica
viewer stream (browser -> replica X -> replica P, which holds the agent -> agent -> a TCP
source) through clusters that differ only in the settings that switch each lean piece off.

    PYTHONPATH=. .venv/bin/python bench/netpaths.py [--seconds 6] [--rounds 3]

Pairs, each measured on the same machine in the same run, rounds interleaved:
- peer client:  all lean (the default)  vs STREAMSPACE_LEAN_PEER_CLIENT=false
- WS server:    all lean (the default)  vs STREAMSPACE_LEAN_WS_SERVER=false
(the RESP client's pair is in bench/hub.py --redis-client lean,library: it carries commands,
not streams). Printed per configuration: MB/s, 1-byte round trip p50/p99 through the whole
path, and the CPU per MB of the two replicas (from /proc; the agent's is shown apart, it does
not change with these settings), the figure that stays comparable on a shared machine. Each
figure is the median of the rounds.

Needs PostgreSQL and Redis binaries as `make test` starts them (STREAMSPACE_TEST_PG_URL); the
stream's source is bench/tcp_source.py. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.stream import _listening, measure_relay, relay_session
from tests.support.cluster import Cluster, cluster
from tests.support.processes import Proc, free_port, wait_until
from tests.support.vnc import stream_url

CONFIGS: dict[str, dict[str, str]] = {
    "all lean (default)": {},
    "library peer client": {"STREAMSPACE_LEAN_PEER_CLIENT": "false"},
    "library WS server": {"STREAMSPACE_LEAN_WS_SERVER": "false"},
}
PAIRS = [
    ("peer client", "library peer client", "all lean (default)"),
    ("WS server", "library WS server", "all lean (default)"),
]
FIGURES = ("mb_s", "p50_us", "p99_us", "cpu_ms_per_mb", "cpu_0", "cpu_1", "cpu_2")


async def open_config(
    stack: AsyncExitStack, name: str, env: dict[str, str], source_port: int, tmp: Path
) -> tuple[Cluster, str, dict[str, str], list[int]]:
    log_dir = tmp / name.replace(" ", "-").replace(",", "")
    log_dir.mkdir()
    c = await stack.enter_async_context(
        cluster(log_dir, replicas=2, redis=True, lb=False, extra_env=env | {"LOG_LEVEL": "WARNING"})
    )
    admin, sid, pids = await relay_session(c, "bench-netpaths", source_port)
    return c, sid, admin, pids


async def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-netpaths-"))
    port = free_port()
    source = Proc(
        name="tcp-source",
        log_dir=tmp,
        env={},
        args=[sys.executable, str(Path(__file__).with_name("tcp_source.py")), str(port)],
    ).start()
    try:
        wait_until(lambda: _listening(port), what="the TCP source")
        async with AsyncExitStack() as stack:
            opened = {}
            for name, env in CONFIGS.items():
                print(f"starting: {name}", flush=True)
                opened[name] = await open_config(stack, name, env, port, tmp)
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
            for round_ in range(args.rounds):
                for name, (c, sid, admin, pids) in opened.items():
                    # the browser's replica is the one without the agent
                    url = await stream_url(c.replicas[1].url, sid, admin)
                    runs[name].append(await measure_relay(url, args.seconds, pids))
                    print(f"  round {round_ + 1} {name}: {runs[name][-1]['mb_s']:.0f} MB/s")
    finally:
        source.kill()
    return {
        name: {f: statistics.median(r[f] for r in results) for f in FIGURES}
        for name, results in runs.items()
    }


def replicas_cpu(r: dict[str, float]) -> float:
    """CPU per MB of the two replicas (P and X): what a user scales the control plane by. The
    agent's share is the same on every path and runs on another host in production."""
    return r["cpu_0"] + r["cpu_1"]


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(
        f"\ncross-replica stream, relay only, median of {args.rounds} rounds of {args.seconds:g} s;"
        f" {os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    print(
        f"{'configuration':32} {'MB/s':>7} {'RTT p50 µs':>11} {'p99 µs':>8} "
        f"{'replicas CPU ms/MB':>19}  (P, X; agent)"
    )
    for name, r in results.items():
        print(
            f"{name:32} {r['mb_s']:7.0f} {r['p50_us']:11.0f} {r['p99_us']:8.0f} "
            f"{replicas_cpu(r):19.2f}  ({r['cpu_0']:.2f}, {r['cpu_1']:.2f}; {r['cpu_2']:.2f})"
        )
    print("\nlean piece vs its library path: the lean piece earns its place where it saves")
    print(">= 20 % of the replicas' CPU per MB or of the round trip p99\n")
    for piece, library, lean in PAIRS:
        a, b = results[library], results[lean]
        cpu = 1 - replicas_cpu(b) / replicas_cpu(a)
        p99 = 1 - b["p99_us"] / a["p99_us"]
        verdict = "keep" if max(cpu, p99) >= 0.20 else "below the bar: use the library"
        print(
            f"{piece:12} replicas CPU/MB {replicas_cpu(b):.2f} vs {replicas_cpu(a):.2f} ms "
            f"(saves {cpu:.0%}); p99 {b['p99_us']:.0f} vs {a['p99_us']:.0f} µs (saves {p99:.0%});"
            f" MB/s {b['mb_s']:.0f} vs {a['mb_s']:.0f} -> {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="bulk transfer per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per config")
    args = parser.parse_args()
    report(asyncio.run(run(args)), args)


if __name__ == "__main__":
    main()
