"""The Kubernetes agent end to end: two control-plane replicas behind haproxy with Redis, two
replicas of one k8s agent under Lease leader election sharing their key through a Secret, the
Kubernetes API test double running the session pod as a real desktop container. A VNC client
streams it through the replica that does not hold the agent; the leading agent is killed; the
standby takes the Lease, adopts the session, and the desktop streams again.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets
from kubernetes_asyncio import client

from streamspace.kubeconn import api_client
from streamspace.leader.kubernetes import lease_name
from tests.support.cluster import Cluster, cluster, eventually
from tests.support.kube import KubeCluster
from tests.support.processes import Proc
from tests.support.vnc import framebuffer_update, stream_url, vnc_client

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.redis]
REGION = "us-east-1"


async def lease_holder(kube: KubeCluster, agent_id: str) -> str | None:
    """What the guide's `kubectl get lease streamspace-agent-<id> -o
    jsonpath='{.spec.holderIdentity}'` prints."""
    api = await api_client(kubeconfig=kube.kubeconfig)
    try:
        lease = await client.CoordinationV1Api(api).read_namespaced_lease(
            lease_name(agent_id), kube.namespace
        )
        return lease.spec.holder_identity or None
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    finally:
        await api.close()


@pytest.fixture
async def k8s_stack(
    tmp_path: Path, kube_cluster: KubeCluster, session_image: str
) -> AsyncIterator[tuple[Cluster, str, dict[str, str], dict[str, Proc]]]:
    agent_id = f"k8s-e2e-{uuid.uuid4().hex[:6]}"
    async with cluster(tmp_path, replicas=2, redis=True, lb=True) as c:
        admin = await c.token(c.replicas[0].url)
        assert c.lb is not None
        agents = {
            pod: c.agent(
                agent_id,
                url=c.lb.url,
                extra={
                    "PLATFORM": "kubernetes",
                    "REGION": REGION,
                    "KUBECONFIG": str(kube_cluster.kubeconfig),
                    "NAMESPACE": kube_cluster.namespace,
                    "AGENT_KEY_SECRET": f"{agent_id}-key",
                    "ENABLE_HA": "true",
                    "LEASE_DURATION": "3",
                    "RENEW_DEADLINE": "2",
                    "RETRY_PERIOD": "0.5",
                    "POD_NAME": pod,
                    "HEARTBEAT_INTERVAL": "1",
                },
            )
            for pod in ("agent-pod-a", "agent-pod-b")
        }
        try:
            await c.approve(agent_id, admin)
            await c.wait_online(agent_id, admin)
            yield c, agent_id, admin, agents
        finally:
            for proc in c.others:
                proc.stop()


async def streams_a_desktop(c: Cluster, sid: str, admin: dict[str, str], *, via: str) -> None:
    async with asyncio.timeout(60), vnc_client(await stream_url(via, sid, admin)) as viewer:
        assert await framebuffer_update(viewer, timeout=30) == (1280, 800)


async def test_a_desktop_pod_streams_across_replicas_and_survives_agent_failover(
    k8s_stack: tuple[Cluster, str, dict[str, str], dict[str, Proc]],
    kube_cluster: KubeCluster,
) -> None:
    c, agent_id, admin, agents = k8s_stack
    registered = f"[AgentHub] Agent registered: {agent_id} (platform: kubernetes, region: {REGION})"
    first = (await c.wait_online(agent_id, admin))["pod_name"]
    await next(rep for rep in c.replicas if rep.pod == first).logged(registered)
    leader = await eventually(lambda: lease_holder(kube_cluster, agent_id), what="a lease holder")
    assert leader in agents

    r = await c.call(
        c.replicas[0].url,
        "POST",
        "/api/v1/sessions",
        admin,
        json={"template": "terminal", "region": REGION},
    )
    assert r.status_code == 202, r.text
    sid = str(r.json()["id"])
    await c.wait_state(sid, "running", admin, timeout=90)
    holder = (await c.wait_online(agent_id, admin))["pod_name"]
    other = next(rep for rep in c.replicas if rep.pod != holder)
    await streams_a_desktop(c, sid, admin, via=other.url)

    agents[leader].send_signal(signal.SIGKILL)
    standby = next(pod for pod in agents if pod != leader)

    async def standby_leads() -> bool:
        return await lease_holder(kube_cluster, agent_id) == standby

    await eventually(standby_leads, timeout=30, what=f"{standby} holding the lease")

    async def standby_connected() -> bool:
        return any(
            f"{agent_id}: connected to" in line for line in agents[standby].log().splitlines()
        )

    await eventually(standby_connected, timeout=30, what="the standby connected")
    assert await c.session_state(c.replicas[0].url, sid, admin) == "running"  # adopted
    await eventually(
        lambda: _streams(c, sid, admin, other.url), timeout=30, what="streaming after failover"
    )
    assert "key stored in Secret" in "".join(p.log() for p in agents.values())


async def _streams(c: Cluster, sid: str, admin: dict[str, str], via: str) -> bool:
    """One viewing attempt; False while the new leader's route is not in place yet."""
    try:
        await streams_a_desktop(c, sid, admin, via=via)
    except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
        return False
    return True
