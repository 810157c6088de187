"""Run leadership candidates as real processes and check their LEADER log (tests and bench).

Not used by the product: it lives in the package so the contract suite and bench/ share one
harness. Times are CLOCK_MONOTONIC, which all processes on one Linux host share.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

POLL = 0.02
# Other suites FLUSHDB their own databases on the shared test Redis; leader tests keep apart.
LEADER_TEST_REDIS_DB = 13


@dataclass(frozen=True)
class Beat:
    """One `LEADER <identity> <epoch> <monotonic>` line: `identity` acted as leader at `at`."""

    identity: str
    epoch: int
    at: float


@dataclass(frozen=True)
class Timings:
    lease: float
    renew_deadline: float
    retry: float


def read_beats(path: Path) -> list[Beat]:
    """Complete lines only: a line still being written is skipped until it ends."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    beats = []
    for line in text.splitlines(keepends=True):
        parts = line.split()
        if line.endswith("\n") and len(parts) == 4 and parts[0] == "LEADER":
            beats.append(Beat(identity=parts[1], epoch=int(parts[2]), at=float(parts[3])))
    return beats


def single_leader_violations(beats: Iterable[Beat]) -> list[str]:
    """Why the log shows two leaders acting at once; empty when it never does.

    Each line is stamped before the writer checks its term is still valid, so a line says
    "this holder held the lease at `at`". One leader at a time then means: each epoch has
    one holder, and ordered by time the epochs never go back.
    """
    problems: list[str] = []
    holders: dict[int, str] = {}
    latest: Beat | None = None
    for beat in sorted(beats, key=lambda b: b.at):
        owner = holders.setdefault(beat.epoch, beat.identity)
        if owner != beat.identity:
            problems.append(f"epoch {beat.epoch} held by both {owner} and {beat.identity}")
        if latest is not None and beat.epoch < latest.epoch:
            problems.append(
                f"{beat.identity} acted with epoch {beat.epoch} at {beat.at:.3f}, "
                f"after {latest.identity} acted with epoch {latest.epoch} "
                f"at {latest.at:.3f}"
            )
        latest = beat if latest is None or beat.epoch >= latest.epoch else latest
    return problems


def backend_env(
    *,
    backend: str,
    agent_id: str,
    workdir: Path,
    timings: Timings,
    redis_url: str | None = None,
    swarm_service: str | None = None,
    kubeconfig: Path | None = None,
    namespace: str | None = None,
) -> dict[str, str]:
    """The agent environment the candidates of one test share."""
    env = {
        "AGENT_ID": agent_id,
        "CONTROL_PLANE_URL": "http://127.0.0.1:1",
        "ENABLE_HA": "true",
        "LEADER_ELECTION_BACKEND": backend,
        "LOCK_FILE_PATH": str(workdir / "locks" / "agent.lock"),
        "LEASE_DURATION": str(timings.lease),
        "RENEW_DEADLINE": str(timings.renew_deadline),
        "RETRY_PERIOD": str(timings.retry),
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    if swarm_service:
        env["SWARM_SERVICE_NAME"] = swarm_service
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    if namespace:
        env["NAMESPACE"] = namespace
    return env


class CandidatePool:
    """Candidate processes sharing one environment and one LEADER log."""

    def __init__(self, *, env: dict[str, str], workdir: Path) -> None:
        self.env = {**os.environ, **env}
        self.workdir = workdir
        self.log_path = workdir / "leader.log"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, identity: str) -> None:
        err = (self.workdir / f"{identity}.err").open("wb")
        self.processes[identity] = subprocess.Popen(
            [sys.executable, "-m", "streamspace.leader.candidate", str(self.log_path)],
            env={**self.env, "POD_NAME": identity},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        err.close()

    def alive(self) -> list[str]:
        return [name for name, proc in self.processes.items() if proc.poll() is None]

    def signal(self, identity: str, signum: signal.Signals) -> float:
        """Send `signum`; return the monotonic time it was sent."""
        sent = time.monotonic()
        self.processes[identity].send_signal(signum)
        if signum in (signal.SIGKILL, signal.SIGTERM):
            self.processes[identity].wait(timeout=30)
        return sent

    def beats(self) -> list[Beat]:
        return read_beats(self.log_path)

    def wait_for_leader(self, *, above_epoch: int = 0, timeout: float) -> Beat:
        """The first beat of the first epoch above `above_epoch` (waits for it)."""
        deadline = time.monotonic() + timeout
        while True:
            newer = [b for b in self.beats() if b.epoch > above_epoch]
            if newer:
                first_epoch = min(b.epoch for b in newer)
                return min((b for b in newer if b.epoch == first_epoch), key=lambda b: b.at)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no leader above epoch {above_epoch} within {timeout}s\n" + self.stderr_tail()
                )
            time.sleep(POLL)

    def wait_for_campaigning(self, identity: str, *, timeout: float) -> None:
        """Until `identity` has tried for the lease and found it held (it logs "campaigning")."""
        deadline = time.monotonic() + timeout
        while "leader election: campaigning" not in self.stderr_of(identity):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{identity} never campaigned\n" + self.stderr_tail())
            time.sleep(POLL)

    def latest(self) -> Beat:
        beats = self.beats()
        if not beats:
            raise LookupError("nobody has led yet")
        return max(beats, key=lambda b: b.at)

    def stderr_of(self, identity: str) -> str:
        return (self.workdir / f"{identity}.err").read_text(errors="replace")

    def stderr_tail(self, lines: int = 5) -> str:
        tails = (
            f"--- {name}\n" + "\n".join(self.stderr_of(name).splitlines()[-lines:])
            for name in self.processes
        )
        return "\n".join(tails)

    def stop_all(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def isolated_redis_url(url: str, *, db: int = LEADER_TEST_REDIS_DB) -> str:
    """`url` pointed at database `db`, so that another suite's FLUSHDB cannot touch our keys."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def swarm_ready() -> bool:
    """Make this Docker engine a single-node swarm if it is not one; False without Docker."""
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{json .Swarm}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    if json.loads(info.stdout).get("LocalNodeState") != "active":
        init = subprocess.run(
            ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # another process may have made it a swarm between our look and our init
        if init.returncode != 0 and "already part of a swarm" not in init.stderr:
            raise subprocess.CalledProcessError(
                init.returncode, init.args, init.stdout, init.stderr
            )
    return True


def create_label_service(name: str) -> None:
    """A service with no replicas: it runs nothing and only carries labels."""
    subprocess.run(
        [
            "docker",
            "service",
            "create",
            "--name",
            name,
            "--replicas",
            "0",
            "--detach",
            "--no-resolve-image",
            "streamspace/leader-election-probe:none",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )


def remove_service(name: str) -> None:
    subprocess.run(["docker", "service", "rm", name], capture_output=True, timeout=60, check=False)
