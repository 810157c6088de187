"""What the same work costs on this machine when it comes in bursts and when it comes spaced out.

Runs a fixed piece of work many times: back to back (the baseline), then with a pause between
runs, as requests arrive at a server under moderate load (200 requests/s is one every 5 ms).
Prints the CPU time of the work itself (not of the pause) per run, and its ratio to the
back-to-back figure. Two kinds of work:

- `json`: a pure-Python workload (encode and decode a 2 KB document 20 times), no I/O;
- `health`: one GET /health through the whole control-plane ASGI app, in process (no socket),
  on a throwaway SQLite database.

The pause is either a sleep in the event loop (`sleep`, the process goes idle) or a busy loop
(`spin`, the process keeps its CPU). If the ratio grows with the pause, the CPU gets slower for
code that ran a while ago (caches, TLB, branch predictors refilled, or a host that shares the
core), and every latency figure taken at moderate load on this machine carries that factor.

    .venv/bin/python bench/idle_cost.py [--runs 800] [--gaps 0.5,1,2,5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DOCUMENT = {
    "sessions": [
        {"id": f"s{i:04d}", "state": "running", "template": "terminal", "cpu": 0.5, "tags": ["a"]}
        for i in range(20)
    ]
}


async def json_work() -> None:
    for _ in range(20):
        json.loads(json.dumps(DOCUMENT))


async def asgi_get(app: Any, path: str) -> int:
    """One request through the ASGI app, as uvicorn would hand it over."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(
    work: Callable[[], Awaitable[object]], *, runs: int, gap: float, spin: bool
) -> float:
    """CPU ms of `work` per run, with `gap` seconds of sleep or busy loop between runs."""
    for _ in range(50):  # warm up
        await work()
    spent = 0.0
    for _ in range(runs):
        began = time.process_time()
        await work()
        spent += time.process_time() - began
        if gap and spin:
            until = time.monotonic() + gap
            while time.monotonic() < until:
                pass
        elif gap:
            await asyncio.sleep(gap)
    return spent / runs * 1000


async def main(args: argparse.Namespace) -> None:
    from streamspace.config import ControlPlaneSettings
    from streamspace.control_plane.app import create_app

    gaps = [float(g) / 1000 for g in args.gaps.split(",")]
    print(
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; {args.runs} runs per row; "
        "CPU ms of the work alone per run; ratio = over back to back"
    )
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("STREAMSPACE_ADMIN_PASSWORD", "bench-admin-password")
        settings = ControlPlaneSettings(
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", log_level="WARNING"
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            if await asgi_get(app, "/health") != 200:
                raise SystemExit("GET /health did not answer 200")
            works: dict[str, Callable[[], Awaitable[object]]] = {
                "json": json_work,
                "health": lambda: asgi_get(app, "/health"),
            }
            print(f"{'work':<8} {'between runs':<16} {'CPU ms/run':>10} {'ratio':>6}")
            for name, work in works.items():
                base = await measure(work, runs=args.runs, gap=0, spin=False)
                print(f"{name:<8} {'nothing (base)':<16} {base:10.3f} {1:6.2f}")
                for gap in gaps:
                    for spin in (False, True):
                        cost = await measure(work, runs=args.runs, gap=gap, spin=spin)
                        label = f"{'spin' if spin else 'sleep'} {gap * 1000:g} ms"
                        print(f"{name:<8} {label:<16} {cost:10.3f} {cost / base:6.2f}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=800, help="runs per row")
    parser.add_argument("--gaps", default="0.5,1,2,5", help="pauses between runs, ms")
    return parser.parse_args()


if __name__ == "__main__":
    uvloop.run(main(parse()))
