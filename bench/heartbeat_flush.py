"""What one heartbeat flush costs a replica's event loop on PostgreSQL, per batch size: the
batch as one UPDATE over arrays (`unnest`, what the hub runs) against the same UPDATE as an
executemany (the baseline: what it ran before, and still runs on SQLite), side by side.

A replica flushes the heartbeats it received every second, so a fleet of N agents heartbeating
every 30 s over R replicas gives batches of N / 30 / R reports (5,000 agents on 3 replicas:
about 56). Every command frame that arrives on that replica while a flush holds the loop waits
for it. Prints, per batch size and statement: CPU of the flushing thread and the longest
stretch the loop could not run anything else (a 1 ms ticker measures it), median and max over
the runs, and the ratio of the medians.

    .venv/bin/python bench/heartbeat_flush.py --pg-url $STREAMSPACE_TEST_PG_URL [--agents 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import uvloop
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.services import fresh_postgres

from streamspace.control_plane.db.migrate import upgrade
from streamspace.control_plane.db.records import AgentRecord
from streamspace.control_plane.hub.heartbeats import (
    _UNNEST,
    _WITH_CAPACITY,
    HeartbeatReport,
    _columns,
    _row,
)

CAPACITY = {"maxSessions": 10, "cpu": 4, "memory": 8192}


def reports(agents: int, size: int, offset: int) -> list[HeartbeatReport]:
    now = datetime.now(UTC)
    return [
        HeartbeatReport(
            agent_id=f"hb-{(offset + i) % agents:05d}",
            epoch=0,
            key_hash="k",
            active=i % 3,
            draining=False,
            capacity=CAPACITY,
            at=now,
        )
        for i in range(size)
    ]


async def ticker(gaps: list[float]) -> None:
    last = time.perf_counter()
    while True:
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def measure(url: str, *, agents: int, sizes: list[int], runs: int) -> None:
    engine = create_async_engine(url, pool_size=2)
    await upgrade(engine)
    async with engine.begin() as conn:
        rows = [
            {
                "id": f"hb-{i:05d}",
                "platform": "memory",
                "approval_status": "approved",
                "api_key_hash": "k",
            }
            for i in range(agents)
        ]
        await conn.execute(insert(AgentRecord), rows)

    async def arrays(batch: list[HeartbeatReport]) -> None:
        async with engine.begin() as conn:
            await conn.execute(_UNNEST, _columns(batch))

    async def executemany(batch: list[HeartbeatReport]) -> None:
        async with engine.begin() as conn:
            await conn.execute(_WITH_CAPACITY, [_row(r) for r in batch])

    ways = {"executemany (base)": executemany, "unnest arrays": arrays}
    gaps: list[float] = []
    tick = asyncio.create_task(ticker(gaps))
    print(
        f"{'batch':>6}  {'statement':<20} {'CPU ms p50':>10} {'max':>7} {'stall ms p50':>12} {'max':>7}"
    )
    try:
        for size in sizes:
            cpu: dict[str, list[float]] = {name: [] for name in ways}
            stall: dict[str, list[float]] = {name: [] for name in ways}
            for run in range(runs):
                for name, write in ways.items():  # interleaved: the machine's drift hits both
                    batch = reports(agents, size, offset=run * size)
                    await asyncio.sleep(0.2)
                    gaps.clear()
                    began = time.thread_time()
                    await write(batch)
                    cpu[name].append((time.thread_time() - began) * 1000)
                    stall[name].append(max(gaps, default=0.0) * 1000)
            for name in ways:
                print(
                    f"{size:>6}  {name:<20} {statistics.median(cpu[name]):>10.2f} "
                    f"{max(cpu[name]):>7.2f} {statistics.median(stall[name]):>12.2f} "
                    f"{max(stall[name]):>7.2f}"
                )
            base, new = ways
            print(
                f"{'':>6}  {'ratio':<20} "
                f"{statistics.median(cpu[new]) / statistics.median(cpu[base]):>10.2f} {'':>7} "
                f"{statistics.median(stall[new]) / statistics.median(stall[base]):>12.2f}"
            )
    finally:
        tick.cancel()
        await engine.dispose()


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("STREAMSPACE_TEST_PG_URL"))
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--sizes", default="56,500", help="reports per flush, comma-separated")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    if not args.pg_url:
        parser.error("--pg-url (or STREAMSPACE_TEST_PG_URL) is required: this is about PostgreSQL")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}; {args.agents} agents, {args.runs} runs per size"
    )
    async with fresh_postgres(args.pg_url) as url:
        await measure(
            url, agents=args.agents, sizes=[int(s) for s in args.sizes.split(",")], runs=args.runs
        )


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1:]))
