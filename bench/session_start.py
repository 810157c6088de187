"""Session start latency: from `Platform.start()` being called to the session's VNC server
answering RFB, for 1 and for N concurrent starts, per platform in one run.

    .venv/bin/python bench/session_start.py [--image streamspace/terminal:bookworm]
        [--concurrency 1 20] [--samples 10] [--no-home] [--platforms docker,kubernetes]

`docker` is the Docker agent's platform on the local engine; `kubernetes` is the Kubernetes
agent's, against the Kubernetes API test double (tests/support/kubeapi; its pods are
containers on the same engine) or the cluster STREAMSPACE_TEST_KUBECONFIG names. Platforms
take turns level by level, and each level prints its p50 against the first platform's.
Each level is measured over `--samples` starts at least (bursts of `concurrency` starts, all
stopped between bursts). Creates its own agent id, network or namespace and home volumes,
and removes them. Run with PYTHONPATH=. for the kubernetes platform.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform as host_platform
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamspace.agents.platforms.base import Platform, SessionSpec
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


async def timed_start(docker: Platform, spec: SessionSpec) -> float:
    began = time.perf_counter()
    await docker.start(spec)
    return time.perf_counter() - began


async def burst(
    docker: Platform, *, image: str, concurrency: int, home: bool
) -> tuple[list[float], float]:
    specs = [
        SessionSpec(
            session_id=f"bench-{uuid.uuid4().hex[:10]}",
            user=f"bench-user-{i}",
            template="bench",
            image=image,
            persistent_home=home,
            pull="never",
        )
        for i in range(concurrency)
    ]
    began = time.perf_counter()
    latencies = await asyncio.gather(*(timed_start(docker, spec) for spec in specs))
    wall = time.perf_counter() - began
    await asyncio.gather(*(docker.stop(spec.session_id) for spec in specs))
    return list(latencies), wall


async def measure(
    docker: Platform, *, image: str, concurrency: int, samples: int, home: bool
) -> Level:
    latencies: list[float] = []
    walls: list[float] = []
    await burst(docker, image=image, concurrency=1, home=home)  # warm-up: network, page cache
    while len(latencies) < samples:
        got, wall = await burst(docker, image=image, concurrency=concurrency, home=home)
        latencies += got
        walls.append(wall)
    return Level(concurrency=concurrency, latencies=latencies, burst_walls=walls)


def report(level: Level, *, platform: str, baseline: Level | None) -> str:
    ms = [v * 1000 for v in level.latencies]
    wall = sum(level.burst_walls) / len(level.burst_walls)
    p50 = percentile(ms, 0.5)
    ratio = "" if baseline is None else f"{p50 / percentile(baseline.latencies, 0.5) / 1000:.2f}x"
    return (
        f"| {platform} | {level.concurrency:>3} | {len(ms):>3} | {p50:7.0f} | "
        f"{percentile(ms, 0.95):7.0f} | {max(ms):7.0f} | {wall * 1000:9.0f} | {ratio} |"
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


async def open_platform(name: str, *, agent_id: str, workdir: Path) -> tuple[Platform, Any]:
    """The platform, and what removes everything it made."""
    if name == "docker":
        network = f"streamspace-bench-{agent_id}"
        docker = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=120)
        return docker, lambda: asyncio.to_thread(cleanup, agent_id, network)
    from tests.support.kube import drop_namespace, make_namespace
    from tests.support.kubeapi import KubeApiDouble

    from streamspace.agents.platforms.kubernetes import KubernetesPlatform

    real = os.environ.get("STREAMSPACE_TEST_KUBECONFIG")
    double = None if real else KubeApiDouble(workdir=workdir / "kubeapi").start()
    kubeconfig = Path(real) if real else double.write_kubeconfig(workdir / "kubeconfig")  # type: ignore[union-attr]
    namespace = f"ss-bench-{agent_id}"
    await make_namespace(kubeconfig, namespace)
    k8s = KubernetesPlatform(
        agent_id=agent_id, namespace=namespace, kubeconfig=kubeconfig, ready_timeout=120
    )

    async def remove() -> None:
        await drop_namespace(kubeconfig, namespace)
        if double is not None:
            await asyncio.to_thread(double.stop)

    return k8s, remove


async def main(args: argparse.Namespace) -> None:
    agent_id = f"bench-{uuid.uuid4().hex[:8]}"
    names = args.platforms.split(",")
    print(f"machine: {machine()}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"image: {args.image}, persistent home: {not args.no_home}, load average: {load}\n")
    print(
        "| platform | concurrent starts | samples | p50 ms | p95 ms | max ms | burst wall ms | p50 vs first |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="session-start-") as tmp:
        opened = [await open_platform(n, agent_id=agent_id, workdir=Path(tmp)) for n in names]
        try:
            for concurrency in args.concurrency:
                baseline: Level | None = None
                for name, (platform, _) in zip(names, opened, strict=True):
                    level = await measure(
                        platform,
                        image=args.image,
                        concurrency=concurrency,
                        samples=max(args.samples, concurrency),
                        home=not args.no_home,
                    )
                    print(report(level, platform=name, baseline=baseline), flush=True)
                    baseline = baseline or level
        finally:
            for platform, remove in opened:
                await platform.close()
                await remove()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="streamspace/terminal:bookworm")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--samples", type=int, default=10, help="starts measured per level")
    parser.add_argument("--no-home", action="store_true", help="no persistent home volume")
    parser.add_argument("--platforms", default="docker", help="comma-separated: docker,kubernetes")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
