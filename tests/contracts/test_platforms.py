"""Contract suite of `Platform`: what the agent runtime relies on from any platform, run on the
in-memory platform, on Docker (the real engine and session image), on Kubernetes against the
API test double (its pods are real session containers) and on a real cluster when
STREAMSPACE_TEST_KUBECONFIG is set (skipped, and counted as skipped, otherwise).

What one platform alone does (Docker's private network, Kubernetes quotas, node loss, 410
Gone) stays in tests/integration/test_<platform>_platform.py. The memory platform runs
nothing: its VNC is the stand-in TCP server its `vnc` knob names, and the tests that need a
desktop that keeps files skip it, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from streamspace.agents.platforms import kubernetes_model
from streamspace.agents.platforms.base import ObservedSession, Platform, SessionSpec
from streamspace.agents.platforms.docker import DockerPlatform
from streamspace.agents.platforms.docker_model import container_name
from streamspace.agents.platforms.kubernetes import KubernetesPlatform
from streamspace.agents.platforms.memory import MemoryKnobs, MemoryPlatform
from streamspace.agents.platforms.rfb import BANNER_LENGTH, RFB_BANNER
from streamspace.agents.rfb_auth import GREETING
from streamspace.errors import NotFound, PlatformError
from streamspace.kubeconn import api_client
from tests.support.cluster import eventually
from tests.support.docker import cleanup, docker_cli
from tests.support.kube import KubeCluster, kube_namespace
from tests.support.watch import next_report

# A desktop app that shows what its home held when it started, then adds this session's mark:
# the session's own output says whether files outlived a hibernation or a session.
HOME_PROBE_APP = (
    'before=$(paste -sd, ~/visits 2>/dev/null); echo "$MARK" >> ~/visits; '
    'echo "home had [$before]"; exec xterm'
)


@dataclass(kw_only=True)
class Subject:
    """One platform under test, with the means to act on its sessions from outside."""

    platform: Platform
    image: str
    user: str
    # Make a session die from outside the platform; returns what its failure detail must say.
    kill: Callable[[str], Awaitable[str]]
    # A second platform instance over the same sessions, as a new leader builds it;
    # None when sessions live only in one instance (memory).
    successor: Callable[[], Platform] | None = None
    # What a session's desktop printed; None when no desktop runs (memory).
    desktop_output: Callable[[str], Awaitable[str]] | None = None

    def spec(self, **overrides: Any) -> SessionSpec:
        fields: dict[str, Any] = {
            "session_id": uuid.uuid4().hex[:12],
            "user": self.user,
            "template": "terminal",
            "image": self.image,
            "pull": "never",
        }
        return SessionSpec(**(fields | overrides))


@pytest.fixture(
    params=[
        "memory",
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("kubernetes", marks=pytest.mark.docker),
        pytest.param("kubernetes-cluster", marks=pytest.mark.docker),
    ]
)
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    """Kubernetes runs on the API test double ("kubernetes") and on a real cluster
    ("kubernetes-cluster", skipped without STREAMSPACE_TEST_KUBECONFIG)."""
    name, _, target = str(request.param).partition("-")
    user = f"alice-{uuid.uuid4().hex[:8]}"  # homes are per user: keep this test's apart
    if name == "memory":
        async with memory_subject(user=user) as made:
            yield made
    elif name == "docker":
        image = request.getfixturevalue("session_image")
        async with docker_subject(user=user, image=image) as made:
            yield made
    else:
        image = request.getfixturevalue("session_image")
        async with (
            kube_namespace(target or "double", request=request, tmp_path=tmp_path) as kube,
            kubernetes_subject(user=user, image=image, kube=kube) as made,
        ):
            yield made


@contextlib.asynccontextmanager
async def memory_subject(*, user: str) -> AsyncIterator[Subject]:
    server = await asyncio.start_server(_greet_as_rfb, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    memory = MemoryPlatform(knobs=MemoryKnobs(vnc=f"{host}:{port}"))

    async def kill(session_id: str) -> str:
        memory.crash(session_id, detail="killed by the test")
        return "killed by the test"

    try:
        yield Subject(platform=memory, image="none", user=user, kill=kill)
    finally:
        server.close()
        await server.wait_closed()


async def _greet_as_rfb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The stand-in VNC server of the memory platform's `vnc` knob: it greets, nothing more."""
    writer.write(b"RFB 003.008\n")
    with contextlib.suppress(OSError):
        await writer.drain()
        writer.close()
        await writer.wait_closed()


@contextlib.asynccontextmanager
async def docker_subject(*, user: str, image: str) -> AsyncIterator[Subject]:
    agent_id = f"contract-{uuid.uuid4().hex[:10]}"
    network = f"streamspace-test-{agent_id}"

    def build() -> DockerPlatform:
        return DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20)

    async def kill(session_id: str) -> str:
        await docker_cli("kill", container_name(session_id))
        return "137"  # SIGKILL's exit code

    async def output(session_id: str) -> str:
        return await docker_cli("logs", container_name(session_id))

    docker = build()
    try:
        yield Subject(
            platform=docker,
            image=image,
            user=user,
            kill=kill,
            successor=build,
            desktop_output=output,
        )
    finally:
        await docker.close()
        await asyncio.to_thread(cleanup, agent_id, network)


@contextlib.asynccontextmanager
async def kubernetes_subject(*, user: str, image: str, kube: KubeCluster) -> AsyncIterator[Subject]:
    agent_id = f"contract-{uuid.uuid4().hex[:6]}"

    def build() -> KubernetesPlatform:
        return KubernetesPlatform(
            agent_id=agent_id,
            namespace=kube.namespace,
            kubeconfig=kube.kubeconfig,
            ready_timeout=60,
            stop_timeout=1,
        )

    async def kill(session_id: str) -> str:
        await kube.evict(kubernetes_model.pod_name(session_id))  # skips on a real cluster
        return "evicted: The node was low on resource: memory."

    async def output(session_id: str) -> str:
        api = await api_client(kubeconfig=kube.kubeconfig)
        try:
            logs = await client.CoreV1Api(api).read_namespaced_pod_log(
                kubernetes_model.pod_name(session_id), kube.namespace
            )
        finally:
            await api.close()
        return str(logs)

    k8s = build()
    try:
        yield Subject(
            platform=k8s,
            image=image,
            user=user,
            kill=kill,
            successor=build,
            desktop_output=output,
        )
    finally:
        await k8s.close()


SERVER_INIT_LENGTH = 24  # width, height, pixel format, name length (the name follows)

# -- helpers ---------------------------------------------------------------------------------


class _BannerReader(asyncio.Protocol):
    """Reads what the VNC server sends first: its banner, or (after the agent logged in) the
    ServerInit that answers the ClientInit it sends (a framebuffer's width and height)."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.expect = BANNER_LENGTH
        self.first: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self.expect and not self.first.done():
            self.first.set_result(bytes(self.received[: self.expect]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.first.done():
            self.first.set_exception(ConnectionError(f"closed before an answer ({exc!r})"))


async def vnc_banner(platform: Platform, session_id: str) -> bytes:
    """What a viewer's stream gets first: the agent opens VNC exactly this way. A session
    with a VNC secret was logged into: it must then answer a ClientInit with a ServerInit,
    and the viewer's first bytes are the agent's own greeting."""
    transport, reader, authenticated = await platform.open_vnc(session_id, _BannerReader)
    try:
        if not authenticated:
            return await asyncio.wait_for(reader.first, 5)
        reader.expect = SERVER_INIT_LENGTH
        transport.write(b"\x01")  # ClientInit: shared
        width, height = struct.unpack(">HH", (await asyncio.wait_for(reader.first, 5))[:4])
        assert width > 0 and height > 0
        return GREETING
    finally:
        transport.close()


async def listed(platform: Platform) -> dict[str, ObservedSession]:
    return {s.session_id: s for s in await platform.list_sessions()}


async def listed_as(platform: Platform, session_id: str, state: str) -> ObservedSession:
    """Wait until the listing shows the session in `state` (a pod is listed as starting until
    the kubelet's readiness probe passes, a moment after VNC answers)."""

    async def shown() -> ObservedSession | None:
        observed = (await listed(platform)).get(session_id)
        return observed if observed is not None and observed.state == state else None

    return await eventually(shown, timeout=30, what=f"session {session_id} listed as {state}")


# -- starting --------------------------------------------------------------------------------


async def test_start_returns_a_running_session_whose_vnc_answers(subject: Subject) -> None:
    spec = subject.spec()

    observed = await subject.platform.start(spec)

    assert (observed.session_id, observed.state) == (spec.session_id, "running")
    assert observed.vnc_host and observed.vnc_port
    assert RFB_BANNER.fullmatch(await vnc_banner(subject.platform, spec.session_id))
    await listed_as(subject.platform, spec.session_id, "running")


async def test_start_is_idempotent_even_when_concurrent(subject: Subject) -> None:
    spec = subject.spec()

    first, second = await asyncio.gather(subject.platform.start(spec), subject.platform.start(spec))
    third = await subject.platform.start(spec)

    assert {(o.state, o.vnc_host, o.vnc_port) for o in (first, second, third)} == {
        ("running", first.vnc_host, first.vnc_port)
    }
    await listed_as(subject.platform, spec.session_id, "running")
    assert [s.session_id for s in await subject.platform.list_sessions()] == [spec.session_id]


# -- hibernating and waking ------------------------------------------------------------------


async def test_a_hibernated_session_wakes_up_running(subject: Subject) -> None:
    platform, spec = subject.platform, subject.spec()
    await platform.start(spec)

    await platform.hibernate(spec.session_id)
    await platform.hibernate(spec.session_id)

    await listed_as(platform, spec.session_id, "hibernated")
    with pytest.raises(PlatformError, match="hibernated"):
        await platform.vnc_address(spec.session_id)

    woken = await platform.wake(spec.session_id)
    again = await platform.wake(spec.session_id)

    assert woken.state == again.state == "running"
    assert RFB_BANNER.fullmatch(await vnc_banner(platform, spec.session_id))
    await listed_as(platform, spec.session_id, "running")


async def test_starting_a_hibernated_session_wakes_it(subject: Subject) -> None:
    """A start re-delivered after the session was hibernated must not leave it asleep."""
    platform, spec = subject.platform, subject.spec()
    await platform.start(spec)
    await platform.hibernate(spec.session_id)

    restarted = await platform.start(spec)

    assert restarted.state == "running"
    assert RFB_BANNER.fullmatch(await vnc_banner(platform, spec.session_id))
    await listed_as(platform, spec.session_id, "running")
    assert [s.session_id for s in await platform.list_sessions()] == [spec.session_id]


async def test_the_home_outlives_hibernation_and_the_session(subject: Subject) -> None:
    """Files in the home survive a hibernation, and the next session of the same user and
    template finds them; another template has a home of its own."""
    output = subject.desktop_output
    if output is None:
        pytest.skip(f"the {subject.platform.name} platform runs no desktop: it keeps no home")
    platform = subject.platform

    async def printed(session_id: str, line: str) -> bool:
        return f"{line}\n" in await output(session_id)

    async def run(spec: SessionSpec, *, expect: str) -> None:
        await platform.start(spec)
        await eventually(lambda: printed(spec.session_id, expect), what=f"{expect!r} printed")

    first = subject.spec(env={"SESSION_APP": HOME_PROBE_APP, "MARK": "first"})
    await run(first, expect="home had []")
    await platform.hibernate(first.session_id)
    await platform.wake(first.session_id)
    await eventually(lambda: printed(first.session_id, "home had [first]"), what="home kept")
    await platform.stop(first.session_id)

    await run(
        subject.spec(env={"SESSION_APP": HOME_PROBE_APP, "MARK": "second"}),
        expect="home had [first,first]",
    )
    await run(
        subject.spec(template="other", env={"SESSION_APP": HOME_PROBE_APP, "MARK": "other"}),
        expect="home had []",
    )


# -- what a new leader finds -----------------------------------------------------------------


async def test_a_new_leader_lists_and_adopts_running_and_hibernated_sessions(
    subject: Subject,
) -> None:
    if subject.successor is None:
        pytest.skip(
            f"the {subject.platform.name} platform's sessions live in one instance: "
            "a new leader starts with none"
        )
    running, sleeping = subject.spec(persistent_home=False), subject.spec(persistent_home=False)
    await asyncio.gather(subject.platform.start(running), subject.platform.start(sleeping))
    await subject.platform.hibernate(sleeping.session_id)

    successor = subject.successor()
    try:
        adopted = await listed_as(successor, running.session_id, "running")
        assert adopted.vnc_host and adopted.vnc_port
        assert (await listed(successor))[sleeping.session_id].state == "hibernated"
        assert RFB_BANNER.fullmatch(await vnc_banner(successor, running.session_id))
        assert (await successor.wake(sleeping.session_id)).state == "running"
        assert RFB_BANNER.fullmatch(await vnc_banner(successor, sleeping.session_id))
    finally:
        await successor.close()


# -- stopping and unknown sessions -----------------------------------------------------------


async def test_a_stopped_session_is_gone(subject: Subject) -> None:
    platform, spec = subject.platform, subject.spec()
    await platform.start(spec)

    await platform.stop(spec.session_id)
    await platform.stop(spec.session_id)

    async def gone() -> bool:
        if spec.session_id in await listed(platform):
            return False
        try:
            await platform.vnc_address(spec.session_id)
        except NotFound:
            return True
        except PlatformError:  # still being removed
            return False
        return False

    await eventually(gone, timeout=30, what="the stopped session gone")
    for operation in (platform.wake, platform.hibernate):
        with pytest.raises(NotFound):
            await operation(spec.session_id)


async def test_operations_on_unknown_sessions(subject: Subject) -> None:
    platform = subject.platform

    await platform.stop("never-started")

    for operation in (platform.hibernate, platform.wake, platform.vnc_address):
        with pytest.raises(NotFound):
            await operation("never-started")
    assert await platform.list_sessions() == []


# -- watching --------------------------------------------------------------------------------


async def test_the_watch_reports_a_session_that_dies_from_outside(subject: Subject) -> None:
    platform = subject.platform
    victim, bystander = subject.spec(persistent_home=False), subject.spec(persistent_home=False)
    await asyncio.gather(platform.start(victim), platform.start(bystander))
    reports = platform.watch()
    # The watch covers what happens once it begins iterating (Docker replays events from that
    # instant, Kubernetes lists first, memory queues): one turn of the loop lets it begin.
    report = asyncio.ensure_future(next_report(reports, victim.session_id))
    await asyncio.sleep(0)
    try:
        expected_detail = await subject.kill(victim.session_id)

        observed = await report
        assert observed.state == "failed"
        assert expected_detail in observed.detail
    finally:
        report.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await report
        await reports.aclose()  # type: ignore[attr-defined]

    sessions = await listed(platform)
    assert sessions[victim.session_id].state == "failed"
    assert sessions[bystander.session_id].state in ("running", "starting")
    assert RFB_BANNER.fullmatch(await vnc_banner(platform, bystander.session_id))
    await platform.stop(victim.session_id)
    await eventually(
        lambda: _absent(platform, victim.session_id), timeout=30, what="the failed session removed"
    )


async def _absent(platform: Platform, session_id: str) -> bool:
    return session_id not in await listed(platform)
