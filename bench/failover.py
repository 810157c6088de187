"""Measure leader failover of the agent HA backends (file, redis, swarm, kubernetes).

Runs real candidate processes (`python -m streamspace.leader.candidate`), kills the leader
with SIGKILL (crash) or SIGTERM (graceful) and prints how long until a standby acts, as p50
and max per backend, against the targets: graceful < 3 s, crash <= lease + retry.

    .venv/bin/python bench/failover.py                 # the guide's 15 / 10 / 2 s, 10 runs
    .venv/bin/python bench/failover.py --quick         # 3 / 2 / 0.5 s
    PYTHONPATH=. .venv/bin/python bench/failover.py --backend kubernetes   # the Lease

The kubernetes backend runs against the Kubernetes API test double (tests/support/kubeapi),
or the cluster STREAMSPACE_TEST_KUBECONFIG names, in a namespace of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis

from streamspace.leader.redis import leader_key
from streamspace.leader.testing import (
    CandidatePool,
    Timings,
    backend_env,
    create_label_service,
    isolated_redis_url,
    remove_service,
    swarm_ready,
)

GRACEFUL_TARGET = 3.0
REPLICAS = 3


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="kills of each kind per backend")
    parser.add_argument("--lease", type=float, default=15.0, help="LEASE_DURATION, seconds")
    parser.add_argument("--renew-deadline", type=float, default=10.0, help="RENEW_DEADLINE")
    parser.add_argument("--retry", type=float, default=2.0, help="RETRY_PERIOD, seconds")
    parser.add_argument("--quick", action="store_true", help="lease 3, deadline 2, retry 0.5")
    parser.add_argument("--backends", default="file,redis,swarm", help="comma-separated")
    parser.add_argument("--backend", dest="backends", help="one backend (same as --backends)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("STREAMSPACE_TEST_REDIS_URL"),
        help="Redis for the redis backend (default STREAMSPACE_TEST_REDIS_URL)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill-phase jitter")
    args = parser.parse_args(argv)
    if args.quick:
        args.lease, args.renew_deadline, args.retry = 3.0, 2.0, 0.5
    if args.redis_url:
        args.redis_url = isolated_redis_url(args.redis_url)
    return args


@contextmanager
def backend_pool(
    *, backend: str, timings: Timings, redis_url: str | None
) -> Iterator[CandidatePool]:
    """Candidates for one backend, with the backend's state created and removed around them."""
    agent_id = f"bench-{uuid.uuid4().hex[:10]}"
    service = f"streamspace-leader-bench-{agent_id}" if backend == "swarm" else None
    with tempfile.TemporaryDirectory(prefix="failover-") as tmp, ExitStack() as stack:
        if service:
            create_label_service(service)
            stack.callback(remove_service, service)
        if backend == "redis" and redis_url:
            stack.callback(_forget_redis_keys, redis_url, agent_id)
        kubeconfig, namespace = (
            stack.enter_context(kubernetes_namespace(Path(tmp)))
            if backend == "kubernetes"
            else (None, None)
        )
        env = backend_env(
            backend=backend,
            agent_id=agent_id,
            workdir=Path(tmp),
            timings=timings,
            redis_url=redis_url,
            swarm_service=service,
            kubeconfig=kubeconfig,
            namespace=namespace,
        )
        pool = CandidatePool(env=env, workdir=Path(tmp))
        stack.callback(pool.stop_all)
        yield pool


@contextmanager
def kubernetes_namespace(workdir: Path) -> Iterator[tuple[Path, str]]:
    """A namespace on the API test double (or STREAMSPACE_TEST_KUBECONFIG's cluster)."""
    from kubernetes_asyncio import client
    from tests.support.kubeapi import KubeApiDouble

    from streamspace.kubeconn import api_client

    namespace = f"ss-bench-{uuid.uuid4().hex[:8]}"
    real = os.environ.get("STREAMSPACE_TEST_KUBECONFIG")
    double = None if real else KubeApiDouble(workdir=workdir / "kubeapi").start()
    kubeconfig = (
        Path(real) if real else double.write_kubeconfig(workdir / "kubeconfig")  # type: ignore[union-attr]
    )

    async def namespaces(create: bool) -> None:
        api = await api_client(kubeconfig=kubeconfig)
        try:
            core = client.CoreV1Api(api)
            if create:
                await core.create_namespace({"metadata": {"name": namespace}})
            else:
                await core.delete_namespace(namespace)
        finally:
            await api.close()

    try:
        asyncio.run(namespaces(True))
        yield kubeconfig, namespace
        asyncio.run(namespaces(False))
    finally:
        if double is not None:
            double.stop()  # its pods and network go with it


def _forget_redis_keys(url: str, agent_id: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.delete(leader_key(agent_id), f"{leader_key(agent_id)}:epoch")


def measure(
    *,
    pool: CandidatePool,
    timings: Timings,
    runs: int,
    rng: random.Random,
) -> dict[str, list[float]]:
    """Alternate crash and graceful kills of the leader; seconds until the successor acts."""
    names = (f"r{i}" for i in range(10_000))
    for _ in range(REPLICAS):
        pool.start(next(names))
    leader = pool.wait_for_leader(timeout=30)
    results: dict[str, list[float]] = {"crash": [], "graceful": []}
    wait = timings.lease + timings.retry + 30
    for run in range(runs * 2):
        mode, signum = ("crash", signal.SIGKILL) if run % 2 == 0 else ("graceful", signal.SIGTERM)
        # Random phase against the renew cycle; enough for the replacement to be campaigning.
        time.sleep(max(1.5, timings.retry) + rng.uniform(0, timings.retry))
        leader = pool.latest()
        sent = pool.signal(leader.identity, signum)
        pool.start(next(names))
        successor = pool.wait_for_leader(above_epoch=leader.epoch, timeout=wait)
        results[mode].append(successor.at - sent)
        print(f"  {mode:8s} run {run // 2 + 1:2d}: {successor.at - sent:6.2f} s", flush=True)
    return results


def report(*, backend: str, results: dict[str, list[float]], timings: Timings) -> list[str]:
    targets = {"crash": timings.lease + timings.retry, "graceful": GRACEFUL_TARGET}
    rows = []
    for mode, values in results.items():
        if not values:
            continue
        p50, worst = statistics.median(values), max(values)
        op = "<=" if mode == "crash" else "<"
        ok = worst <= targets[mode] if mode == "crash" else worst < targets[mode]
        rows.append(
            f"| {backend} | {mode} | {len(values)} | {p50:.2f} | {worst:.2f} "
            f"| {op} {targets[mode]:.1f} | {'met' if ok else 'MISSED'} |"
        )
    return rows


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    timings = Timings(lease=args.lease, renew_deadline=args.renew_deadline, retry=args.retry)
    rng = random.Random(args.seed)
    table = [
        "| backend | kill | runs | p50 s | max s | target s | |",
        "|---|---|---|---|---|---|---|",
    ]
    print(
        f"lease {timings.lease} s, renew deadline {timings.renew_deadline} s, "
        f"retry {timings.retry} s, {args.runs} runs of each kind, {REPLICAS} replicas"
    )
    for backend in args.backends.split(","):
        if backend == "redis" and not args.redis_url:
            print("redis: skipped (no --redis-url / STREAMSPACE_TEST_REDIS_URL)")
            continue
        if backend == "swarm" and not swarm_ready():
            print("swarm: skipped (no Docker engine)")
            continue
        print(f"{backend}:", flush=True)
        with backend_pool(backend=backend, timings=timings, redis_url=args.redis_url) as pool:
            results = measure(pool=pool, timings=timings, runs=args.runs, rng=rng)
        table += report(backend=backend, results=results, timings=timings)
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
