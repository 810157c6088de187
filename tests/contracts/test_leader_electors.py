"""Contract suite of `LeaderElector`, run on the real file, Redis and Swarm backends, and on
the Kubernetes Lease backend against the Kubernetes API test double (tests/support/kubeapi),
or a real cluster when STREAMSPACE_TEST_KUBECONFIG is set.

Candidates are real processes (`python -m streamspace.leader.candidate`) that log a
`LEADER <identity> <epoch> <monotonic>` line every 100 ms while leading; tests kill, stop
and restart them and read that log. Short timings keep it fast: lease 3 s, deadline 2 s,
retry 0.5 s.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from streamspace.config.agent import AgentSettings
from streamspace.leader.base import LeaderElector
from streamspace.leader.factory import build_elector
from streamspace.leader.kubernetes import lease_name
from streamspace.leader.redis import leader_key
from streamspace.leader.testing import (
    CandidatePool,
    Timings,
    backend_env,
    create_label_service,
    isolated_redis_url,
    remove_service,
    single_leader_violations,
    swarm_ready,
)
from tests.support.kube import KubeCluster, delete_lease, kube_namespace

TIMINGS = Timings(lease=3.0, renew_deadline=2.0, retry=0.5)
# Process start-up and scheduling on a busy shared host, plus one backend round trip.
SLACK = 1.5
START_UP = 60.0  # a bound, not a figure: returns as soon as a leader beats (3 cold Python
# processes importing their backend client take tens of seconds on a loaded 2-core host)
CRASH_BOUND = TIMINGS.lease + TIMINGS.retry + SLACK
WAIT = CRASH_BOUND + 5.0


def _unavailable(reason: str) -> None:
    if os.environ.get("STREAMSPACE_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (STREAMSPACE_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@dataclass
class Backend:
    """One backend's shared state for a test: where the lease lives."""

    name: str
    agent_id: str
    workdir: Path
    redis_url: str | None = None
    swarm_service: str | None = None
    kube: KubeCluster | None = None

    def env(self) -> dict[str, str]:
        return backend_env(
            backend=self.name,
            agent_id=self.agent_id,
            workdir=self.workdir,
            timings=TIMINGS,
            redis_url=self.redis_url,
            swarm_service=self.swarm_service,
            kubeconfig=self.kube.kubeconfig if self.kube else None,
            namespace=self.kube.namespace if self.kube else None,
        )

    def elector(self, identity: str) -> LeaderElector:
        return build_elector(AgentSettings(**{**self.env(), "POD_NAME": identity}))

    async def forget(self) -> None:
        """Lose every trace of the lease, as a flushed Redis, a redeployed stack or a deleted
        Lease would."""
        if self.kube is not None:
            await delete_lease(self.kube, lease_name(self.agent_id))
        if self.name == "file":
            Path(self.env()["LOCK_FILE_PATH"]).unlink()
        if self.redis_url:
            with redis.Redis.from_url(self.redis_url) as client:
                client.delete(leader_key(self.agent_id), f"{leader_key(self.agent_id)}:epoch")
        if self.swarm_service:
            remove_service(self.swarm_service)
            create_label_service(self.swarm_service)


@pytest.fixture(params=["file", "redis", "swarm", "kubernetes", "kubernetes-cluster"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The Lease runs on the API test double ("kubernetes") and on a real cluster
    ("kubernetes-cluster", skipped without STREAMSPACE_TEST_KUBECONFIG)."""
    name, _, target = str(request.param).partition("-")
    setup = Backend(name=name, agent_id=f"contract-{uuid.uuid4().hex[:10]}", workdir=tmp_path)
    async with AsyncExitStack() as stack:
        if name == "kubernetes":
            setup.kube = await stack.enter_async_context(
                kube_namespace(target or "double", request=request, tmp_path=tmp_path)
            )
        with _backend_state(setup) as ready:
            yield ready


@contextmanager
def _backend_state(setup: Backend) -> Iterator[Backend]:
    if setup.name == "redis":
        url = os.environ.get("STREAMSPACE_TEST_REDIS_URL")
        if not url:
            _unavailable("STREAMSPACE_TEST_REDIS_URL is not set: no Redis for the redis backend")
        setup.redis_url = isolated_redis_url(str(url))
    if setup.name == "swarm":
        if not swarm_ready():
            _unavailable("no Docker engine reachable for the swarm backend")
        setup.swarm_service = f"streamspace-leader-test-{setup.agent_id}"
        create_label_service(setup.swarm_service)
    try:
        yield setup
    finally:
        if setup.swarm_service:
            remove_service(setup.swarm_service)
        if setup.redis_url:
            with redis.Redis.from_url(setup.redis_url) as client:
                client.delete(leader_key(setup.agent_id), f"{leader_key(setup.agent_id)}:epoch")


@pytest.fixture
def pool(backend: Backend) -> Iterator[CandidatePool]:
    candidates = CandidatePool(env=backend.env(), workdir=backend.workdir)
    try:
        yield candidates
    finally:
        candidates.stop_all()


async def test_a_held_lease_excludes_others_until_released(backend: Backend) -> None:
    a, b = backend.elector("a"), backend.elector("b")
    try:
        first = await a.try_acquire()
        assert first is not None
        assert await a.try_acquire() == first  # the holder keeps its exact epoch (fencing)
        assert await b.try_acquire() is None
        assert await a.renew()
        assert await b.current_holder() == "a"
        await a.release()
        second = await b.try_acquire()
        assert second is not None and second > first
        assert not await a.renew()
        assert await a.current_holder() == "b"
    finally:
        await a.close()
        await b.close()


async def test_epochs_keep_increasing_after_the_backend_forgets(backend: Backend) -> None:
    a, b = backend.elector("a"), backend.elector("b")
    try:
        first = await a.try_acquire()
        assert first is not None
        await a.release()
        await backend.forget()
        second = await b.try_acquire()
        assert second is not None and second > first
    finally:
        await a.close()
        await b.close()


def _assert_one_leader_at_a_time(pool: CandidatePool) -> None:
    problems = single_leader_violations(pool.beats())
    assert not problems, "\n".join(problems[:10]) + "\n" + pool.stderr_tail()


def test_one_leader_at_a_time_under_churn(pool: CandidatePool) -> None:
    names = (f"c{i}" for i in itertools.count())
    rng = random.Random(20261127)
    for _ in range(3):
        pool.start(next(names))
    leader = pool.wait_for_leader(timeout=START_UP)
    leader_changes = 0
    for target, signum in [
        ("leader", signal.SIGKILL),
        ("standby", signal.SIGKILL),
        ("leader", signal.SIGTERM),
        ("leader", signal.SIGKILL),
        ("leader", signal.SIGTERM),
        ("new leader", signal.SIGKILL),
    ]:
        # A fresh candidate joins before each blow and has met the leader: what is measured
        # is the takeover, not a Python process starting on a loaded machine.
        newcomer = next(names)
        pool.start(newcomer)
        pool.wait_for_campaigning(newcomer, timeout=START_UP)
        leader = pool.latest()
        standbys = [name for name in pool.alive() if name != leader.identity]
        pool.signal(leader.identity if "leader" in target else rng.choice(standbys), signum)
        if "leader" in target:
            leader = pool.wait_for_leader(above_epoch=leader.epoch, timeout=WAIT)
            leader_changes += 1
    pool.stop_all()
    _assert_one_leader_at_a_time(pool)
    assert len({beat.epoch for beat in pool.beats()}) >= leader_changes + 1


def test_standby_takes_over_within_lease_and_retry_after_leader_is_killed(
    pool: CandidatePool,
) -> None:
    pool.start("a")
    pool.start("b")
    leader = pool.wait_for_leader(timeout=START_UP)
    pool.wait_for_campaigning("b" if leader.identity == "a" else "a", timeout=WAIT)
    killed_at = pool.signal(leader.identity, signal.SIGKILL)
    successor = pool.wait_for_leader(above_epoch=leader.epoch, timeout=WAIT)
    assert successor.identity != leader.identity
    assert successor.at - killed_at <= CRASH_BOUND
    _assert_one_leader_at_a_time(pool)


def test_sigterm_hands_over_sooner_than_a_lease(pool: CandidatePool) -> None:
    pool.start("a")
    pool.start("b")
    leader = pool.wait_for_leader(timeout=START_UP)
    pool.wait_for_campaigning("b" if leader.identity == "a" else "a", timeout=WAIT)
    stopped_at = pool.signal(leader.identity, signal.SIGTERM)
    successor = pool.wait_for_leader(above_epoch=leader.epoch, timeout=WAIT)
    assert successor.at - stopped_at < TIMINGS.lease
    assert "released leadership" in pool.stderr_of(leader.identity)
    _assert_one_leader_at_a_time(pool)


def test_paused_leader_does_not_act_after_resuming(backend: Backend, pool: CandidatePool) -> None:
    pool.start("a")
    pool.start("b")
    old = pool.wait_for_leader(timeout=START_UP)
    pool.signal(old.identity, signal.SIGSTOP)
    if backend.name == "file":
        _assert_flock_survives_a_pause(pool, old.epoch)
    else:
        new = pool.wait_for_leader(above_epoch=old.epoch, timeout=WAIT)
        assert new.identity != old.identity
        pool.signal(old.identity, signal.SIGCONT)
        # Until it logs the loss (its work stopped first) the resumed leader might act: watch
        # that whole window rather than a guess at its length.
        deadline = time.monotonic() + WAIT
        while "lost leadership" not in pool.stderr_of(old.identity):
            assert time.monotonic() < deadline, "the resumed leader never saw it lost the lease"
            time.sleep(0.05)
        pool.stop_all()
        late = [b for b in pool.beats() if b.epoch == old.epoch and b.at > new.at]
        assert not late, f"old leader acted after epoch {new.epoch} began: {late[:3]}"
    _assert_one_leader_at_a_time(pool)


def _assert_flock_survives_a_pause(pool: CandidatePool, epoch: int) -> None:
    """A flock has no expiry: nobody else may lead while its paused holder lives.

    On resuming, the holder sees its renew deadline passed and steps down (releasing the
    lock) or renews; either way someone leads again, one at a time.
    """
    time.sleep(CRASH_BOUND)
    assert {b.epoch for b in pool.beats()} == {epoch}
    resumed_at = pool.signal(pool.latest().identity, signal.SIGCONT)
    deadline = time.monotonic() + WAIT
    while not [b for b in pool.beats() if b.at > resumed_at]:
        assert time.monotonic() < deadline, "nobody led after the holder resumed"
        time.sleep(0.05)
    pool.stop_all()
