"""KubernetesPlatform over real HTTP: against the Kubernetes API test double (its pods run as
real session containers on the local Docker engine), or a real cluster when
STREAMSPACE_TEST_KUBECONFIG is set. Each test gets its own namespace. What only Kubernetes does
(quotas, image pulls, node loss, 410 Gone); what every platform must do is in
tests/contracts/test_platforms.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client

from streamspace.agents.platforms import kubernetes_model as model
from streamspace.agents.platforms.base import SessionSpec
from streamspace.agents.platforms.kubernetes import KubernetesPlatform
from streamspace.agents.rfb_auth import SECURITY_NONE, SECURITY_VNC_AUTH, derived_secret
from streamspace.errors import PlatformError
from streamspace.kubeconn import api_client
from tests.support.kube import KubeCluster
from tests.support.vnc import raw_login
from tests.support.watch import next_report

pytestmark = [pytest.mark.docker]


def spec(image: str, *, user: str = "alice", home: bool = True, **extra: object) -> SessionSpec:
    return SessionSpec(
        session_id=uuid.uuid4().hex,
        user=user,
        template="terminal",
        image=image,
        persistent_home=home,
        pull="never",
        **extra,  # type: ignore[arg-type]
    )


def platform_on(kube: KubeCluster, *, agent_id: str = "", seed: str = "") -> KubernetesPlatform:
    """An agent's platform on the test cluster (a fresh agent id unless given)."""
    return KubernetesPlatform(
        agent_id=agent_id or f"k8s-test-{uuid.uuid4().hex[:6]}",
        namespace=kube.namespace,
        kubeconfig=kube.kubeconfig,
        ready_timeout=60,
        stop_timeout=1,
        vnc_secret_seed=seed,
    )


@pytest.fixture
async def platform(kube_cluster: KubeCluster) -> AsyncIterator[KubernetesPlatform]:
    k8s = platform_on(kube_cluster)
    try:
        yield k8s
    finally:
        await k8s.close()


async def core(kube: KubeCluster) -> tuple[client.ApiClient, client.CoreV1Api]:
    api = await api_client(kubeconfig=kube.kubeconfig)
    return api, client.CoreV1Api(api)


async def test_an_image_that_cannot_be_pulled_fails_at_once_in_words(
    platform: KubernetesPlatform,
) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(PlatformError, match="image streamspace/nothing-here:1 cannot be pulled"):
        await platform.start(spec("streamspace/nothing-here:1", home=False))
    assert loop.time() - began < 30  # not the 60 s readiness timeout


async def test_a_quota_refusal_is_a_capacity_answer(
    platform: KubernetesPlatform, kube_cluster: KubeCluster, session_image: str
) -> None:
    api, v1 = await core(kube_cluster)
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "sessions"},
        "spec": {"hard": {"pods": "0"}},
    }
    try:
        await v1.create_namespaced_resource_quota(kube_cluster.namespace, quota)
        with pytest.raises(PlatformError, match="exceeded quota") as refused:
            await platform.start(spec(session_image, home=False))
        assert refused.value.code == "capacity"
    finally:
        await api.close()


async def test_each_session_has_its_own_vnc_secret_that_goes_with_it(
    platform: KubernetesPlatform, kube_cluster: KubeCluster, session_image: str
) -> None:
    """The Pod's VNC_PASSWORD comes from the session's Secret; only a client with it gets in
    (as the agent does, reading it back); stopping the session deletes the Secret."""
    session = spec(session_image, home=False)
    observed = await platform.start(session)
    name = model.pod_name(session.session_id)
    api, v1 = await core(kube_cluster)
    try:
        stored = model.secret_value(
            api.sanitize_for_serialization(
                await v1.read_namespaced_secret(name, kube_cluster.namespace)
            ),
            key=model.SECRET_KEY,
        )
        assert stored is not None and len(stored) == 8
        assert (await platform.vnc_target(session.session_id)).secret == stored
        assert observed.vnc_host and observed.vnc_port
        host, port = observed.vnc_host, observed.vnc_port
        assert await raw_login(host, port, security=SECURITY_NONE) == ([2], "closed")
        wrong = await raw_login(host, port, security=SECURITY_VNC_AUTH, password="guessed!")
        assert wrong == ([2], "failed")
        right = await raw_login(host, port, security=SECURITY_VNC_AUTH, password=stored)
        assert right == ([2], "1280x800")

        await platform.stop(session.session_id)
        secrets = await v1.list_namespaced_secret(kube_cluster.namespace)
        assert name not in {item.metadata.name for item in secrets.items}
    finally:
        await api.close()
        await platform.stop(session.session_id)


async def test_with_a_seed_the_agent_derives_secrets_and_never_reads_or_deletes_one(
    kube_cluster: KubeCluster, session_image: str
) -> None:
    """VNC_SECRET_SEED (the chart sets one): the session's Secret holds a secret derived from
    the seed and is owned by the session's record, so the Role needs only `create` on
    Secrets: the agent finds the secret again without reading it (here it is deleted under
    the running Pod, and the agent still logs in), and stopping the session takes the Secret
    with the record."""
    seed = "s" * 40
    platform = platform_on(kube_cluster, seed=seed)
    session = spec(session_image, home=False)
    name = model.pod_name(session.session_id)
    secret_name = model.seeded_secret_name(session.session_id, seed=seed)
    assert secret_name != model.seeded_secret_name(session.session_id, seed="t" * 40)
    api, v1 = await core(kube_cluster)
    try:
        observed = await platform.start(session)
        stored = api.sanitize_for_serialization(
            await v1.read_namespaced_secret(secret_name, kube_cluster.namespace)
        )
        record = api.sanitize_for_serialization(
            await v1.read_namespaced_config_map(name, kube_cluster.namespace)
        )
        derived = derived_secret(seed=seed, session_id=session.session_id)
        assert model.secret_value(stored, key=model.SECRET_KEY) == derived
        owners = stored["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
            ("ConfigMap", name, record["metadata"]["uid"])
        ]
        assert observed.vnc_host and observed.vnc_port
        right = await raw_login(
            observed.vnc_host, observed.vnc_port, security=SECURITY_VNC_AUTH, password=derived
        )
        assert right == ([2], "1280x800")

        # the Pod has its env already; the agent does not need the Secret to log in
        await v1.delete_namespaced_secret(secret_name, kube_cluster.namespace)
        assert (await platform.vnc_target(session.session_id)).secret == derived
        # made again (as a wake would) and collected with the record when the session stops
        await v1.create_namespaced_secret(
            kube_cluster.namespace,
            stored | {"metadata": {"name": secret_name, "ownerReferences": owners}},
        )
        await platform.stop(session.session_id)
        secrets = await v1.list_namespaced_secret(kube_cluster.namespace)
        assert secret_name not in {item.metadata.name for item in secrets.items}
    finally:
        await api.close()
        await platform.stop(session.session_id)
        await platform.close()


async def test_a_session_woken_after_the_seed_changed_gets_a_secret_of_the_new_seed(
    kube_cluster: KubeCluster, session_image: str
) -> None:
    """The agent cannot replace a Secret (create only): the seed's fingerprint is in the
    Secret's name, so a session hibernated under one seed and woken under another gets a new
    Secret with the password the agent now derives, and streams."""
    session = spec(session_image, home=False)
    before, after = (platform_on(kube_cluster, agent_id="k8s-seeded", seed=s * 40) for s in "ab")
    try:
        await before.start(session)
        await before.hibernate(session.session_id)
        observed = await after.wake(session.session_id)
        assert observed.vnc_host and observed.vnc_port
        password = derived_secret(seed="b" * 40, session_id=session.session_id)
        assert (await after.vnc_target(session.session_id)).secret == password
        right = await raw_login(
            observed.vnc_host, observed.vnc_port, security=SECURITY_VNC_AUTH, password=password
        )
        assert right == ([2], "1280x800")
    finally:
        await after.stop(session.session_id)
        await before.close()
        await after.close()


async def test_the_watch_reports_node_loss_and_removal(
    platform: KubernetesPlatform, kube_cluster: KubeCluster, session_image: str
) -> None:
    if not kube_cluster.is_double:
        pytest.skip("losing nodes on demand needs the API test double")
    lost, removed = (spec(session_image, home=False) for _ in range(2))
    await asyncio.gather(*(platform.start(s) for s in (lost, removed)))
    reports = platform.watch()
    try:
        await kube_cluster.lose_node(model.pod_name(lost.session_id))
        observed = await next_report(reports, lost.session_id)
        assert observed.state == "failed" and observed.detail.startswith("node lost: ")
        api, v1 = await core(kube_cluster)
        try:
            await v1.delete_namespaced_pod(
                model.pod_name(removed.session_id), kube_cluster.namespace
            )
        finally:
            await api.close()
        observed = await next_report(reports, removed.session_id)
        assert observed.state in ("missing", "failed")
    finally:
        await reports.aclose()  # type: ignore[attr-defined]
        for s in (lost, removed):
            await platform.stop(s.session_id)


async def test_the_watch_survives_a_history_too_old_to_resume(
    platform: KubernetesPlatform, kube_cluster: KubeCluster, session_image: str
) -> None:
    """After 410 Gone the watch lists again and goes on reporting."""
    if not kube_cluster.is_double:
        pytest.skip("compacting history on demand needs the API test double")
    first, second = spec(session_image, home=False), spec(session_image, home=False)
    await asyncio.gather(platform.start(first), platform.start(second))
    reports = platform.watch()
    try:
        await kube_cluster.evict(model.pod_name(first.session_id))
        assert (await next_report(reports, first.session_id)).state == "failed"
        await kube_cluster.compact()
        await kube_cluster.drop_watches()
        await kube_cluster.evict(model.pod_name(second.session_id))
        assert (await next_report(reports, second.session_id)).state == "failed"
    finally:
        await reports.aclose()  # type: ignore[attr-defined]
        await platform.stop(first.session_id)
        await platform.stop(second.session_id)


async def test_every_hibernation_is_reported_not_only_the_first(
    platform: KubernetesPlatform, session_image: str
) -> None:
    session = spec(session_image, home=False)
    await platform.start(session)
    reports = platform.watch()
    try:
        await platform.hibernate(session.session_id)
        assert (await next_report(reports, session.session_id)).state == "hibernated"
        await platform.wake(session.session_id)
        await platform.hibernate(session.session_id)
        assert (await next_report(reports, session.session_id)).state == "hibernated"
    finally:
        await reports.aclose()  # type: ignore[attr-defined]
        await platform.stop(session.session_id)


async def test_an_agent_lists_only_its_installation_and_its_legacy_sessions(
    kube_cluster: KubeCluster, platform: KubernetesPlatform
) -> None:
    """Two installations' agents of the same id in one namespace: each sees its own sessions
    (and those from before installation ids), never the other's."""
    mine, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    platform.use_installation(mine)
    agent_id = platform._agent_id
    sessions = {}
    api, core_api = await core(kube_cluster)
    try:
        for owner in (mine, theirs, None):
            session = spec("streamspace/terminal:bookworm")
            record = model.record_manifest(
                spec=session, agent_id=agent_id, state="hibernated", installation_id=owner
            )
            await core_api.create_namespaced_config_map(kube_cluster.namespace, record)
            sessions[owner] = session.session_id
    finally:
        await api.close()

    listed = {s.session_id: s.state for s in await platform.list_sessions()}

    assert listed == {sessions[mine]: "hibernated", sessions[None]: "hibernated"}
    labels = model.record_manifest(
        spec=spec("i"), agent_id=agent_id, state="running", installation_id=mine
    )["metadata"]["labels"]
    assert labels[model.LABEL_INSTALLATION] == mine
