"""Session start latency on the local Docker engine: from `DockerPlatform.start()` being called
to the session's VNC server answering RFB, for 1 and for N concurrent starts.

    .venv/bin/python bench/session_start.py [--image streamspace/terminal:bookworm]
        [--concurrency 1 20] [--samples 10] [--no-home]

Each level is measured over `--samples` starts at least (bursts of `concurrency` starts, all
stopped between bursts). Creates its own agent id, network and home volumes, and removes them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform as host_platform
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from streamspace.agents.platforms.base import SessionSpec
from streamspace.agents.platforms.docker import DockerPlatform


@dataclass(frozen=True, kw_only=True)
class Level:
    concurrency: int
    latencies: list[float]
    burst_walls: list[float]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a measured start)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def timed_start(docker: DockerPlatform, spec: SessionSpec) -> float:
    began = time.perf_counter()
    await docker.start(spec)
    return time.perf_counter() - began


async def burst(
    docker: DockerPlatform, *, image: str, concurrency: int, home: bool
) -> tuple[list[float], float]:
    specs = [
        SessionSpec(
            session_id=f"bench-{uuid.uuid4().hex[:10]}",
            user=f"bench-user-{i}",
            template="bench",
            image=image,
            persistent_home=home,
        )
        for i in range(concurrency)
    ]
    began = time.perf_counter()
    latencies = await asyncio.gather(*(timed_start(docker, spec) for spec in specs))
    wall = time.perf_counter() - began
    await asyncio.gather(*(docker.stop(spec.session_id) for spec in specs))
    return list(latencies), wall


async def measure(
    docker: DockerPlatform, *, image: str, concurrency: int, samples: int, home: bool
) -> Level:
    latencies: list[float] = []
    walls: list[float] = []
    await burst(docker, image=image, concurrency=1, home=home)  # warm-up: network, page cache
    while len(latencies) < samples:
        got, wall = await burst(docker, image=image, concurrency=concurrency, home=home)
        latencies += got
        walls.append(wall)
    return Level(concurrency=concurrency, latencies=latencies, burst_walls=walls)


def report(level: Level) -> str:
    ms = [v * 1000 for v in level.latencies]
    wall = sum(level.burst_walls) / len(level.burst_walls)
    return (
        f"| {level.concurrency:>3} | {len(ms):>3} | {percentile(ms, 0.5):7.0f} | "
        f"{percentile(ms, 0.95):7.0f} | {max(ms):7.0f} | {wall * 1000:9.0f} |"
    )


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")
    engine = subprocess.run(
        ["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Linux {host_platform.release()}, "
        f"Docker {engine}, Python {host_platform.python_version()}"
    )


def cleanup(agent_id: str, network: str) -> None:
    label = f"label=streamspace.agent={agent_id}"
    for kind in (["ps", "-aq"], ["volume", "ls", "-q"]):
        ids = subprocess.run(
            ["docker", *kind, "--filter", label], capture_output=True, text=True
        ).stdout.split()
        if ids:
            remove = ["rm", "-f"] if kind[0] == "ps" else ["volume", "rm", "-f"]
            subprocess.run(["docker", *remove, *ids], capture_output=True)
    subprocess.run(["docker", "network", "rm", network], capture_output=True)


async def main(args: argparse.Namespace) -> None:
    agent_id = f"bench-{uuid.uuid4().hex[:8]}"
    network = f"streamspace-bench-{agent_id}"
    docker = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=120)
    print(f"machine: {machine()}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"image: {args.image}, persistent home: {not args.no_home}, load average: {load}\n")
    print("| concurrent starts | samples | p50 ms | p95 ms | max ms | burst wall ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    try:
        for concurrency in args.concurrency:
            level = await measure(
                docker,
                image=args.image,
                concurrency=concurrency,
                samples=max(args.samples, concurrency),
                home=not args.no_home,
            )
            print(report(level), flush=True)
    finally:
        await docker.close()
        await asyncio.to_thread(cleanup, agent_id, network)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="streamspace/terminal:bookworm")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--samples", type=int, default=10, help="starts measured per level")
    parser.add_argument("--no-home", action="store_true", help="no persistent home volume")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
