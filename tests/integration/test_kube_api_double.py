"""The Kubernetes API test double enforces what the agent relies on, seen through the same
client the agent uses (kubernetes_asyncio over real HTTP): optimistic concurrency,
AlreadyExists/NotFound, selectors, resumable watches and 410 Gone, schema validation, quotas.
These run against a real cluster too (STREAMSPACE_TEST_KUBECONFIG), which must agree."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from streamspace.kubeconn import api_client
from tests.support.kube import KubeCluster

pytestmark = [pytest.mark.docker]


@pytest.fixture
async def core(kube_cluster: KubeCluster) -> AsyncIterator[client.CoreV1Api]:
    api = await api_client(kubeconfig=kube_cluster.kubeconfig)
    try:
        yield client.CoreV1Api(api)
    finally:
        await api.close()


def config_map(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


async def test_conflicts_and_missing_objects_answer_like_the_api_server(
    core: client.CoreV1Api, kube_cluster: KubeCluster
) -> None:
    ns = kube_cluster.namespace
    first = await core.create_namespaced_config_map(ns, config_map("a", x="1"))
    with pytest.raises(ApiException) as exists:
        await core.create_namespaced_config_map(ns, config_map("a"))
    assert exists.value.status == 409 and "AlreadyExists" in exists.value.body
    with pytest.raises(ApiException) as missing:
        await core.read_namespaced_config_map("nope", ns)
    assert missing.value.status == 404
    fresh = await core.replace_namespaced_config_map(
        "a",
        ns,
        {
            **config_map("a", x="2"),
            "metadata": {"name": "a", "resourceVersion": first.metadata.resource_version},
        },
    )
    assert fresh.data == {"x": "2"}
    stale = config_map("a", x="3")
    stale["metadata"]["resourceVersion"] = first.metadata.resource_version
    with pytest.raises(ApiException) as conflict:
        await core.replace_namespaced_config_map("a", ns, stale)
    assert conflict.value.status == 409 and "the object has been modified" in conflict.value.body
    patched = await core.patch_namespaced_config_map("a", ns, {"data": {"y": "4"}})
    assert patched.data == {"x": "2", "y": "4"}


async def test_label_selectors_select(core: client.CoreV1Api, kube_cluster: KubeCluster) -> None:
    ns = kube_cluster.namespace
    for name, labels in [
        ("p", {"app": "a", "tier": "web"}),
        ("q", {"app": "b"}),
        ("r", {"app": "c", "tier": "db"}),
    ]:
        await core.create_namespaced_config_map(ns, config_map(name, labels))

    async def names(selector: str) -> set[str]:
        found = await core.list_namespaced_config_map(ns, label_selector=selector)
        return {item.metadata.name for item in found.items}

    assert await names("app=a") == {"p"}
    assert await names("app!=a") == {"q", "r"}
    assert await names("app in (a,c)") == {"p", "r"}
    assert await names("app notin (a,c)") == {"q"}
    assert await names("tier") == {"p", "r"}
    assert await names("!tier") == {"q"}
    assert await names("app in (a,c),tier=db") == {"r"}


async def test_a_watch_resumes_after_a_version_and_expires_past_the_history(
    core: client.CoreV1Api, kube_cluster: KubeCluster
) -> None:
    ns = kube_cluster.namespace
    await core.create_namespaced_config_map(ns, config_map("before"))
    mark = (await core.list_namespaced_config_map(ns)).metadata.resource_version
    await core.create_namespaced_config_map(ns, config_map("after"))
    stream = watch.Watch()
    seen = []
    async with asyncio.timeout(30):
        async for event in stream.stream(
            core.list_namespaced_config_map, ns, resource_version=mark, timeout_seconds=5
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if seen:
                break
    await stream.close()
    assert seen == [("ADDED", "after")]  # only what came after the version
    if not kube_cluster.is_double:
        return
    await kube_cluster.compact()
    gone = watch.Watch()
    with pytest.raises(ApiException) as expired:
        async with asyncio.timeout(30):
            async for _ in gone.stream(
                core.list_namespaced_config_map, ns, resource_version=mark, timeout_seconds=5
            ):
                pass
    await gone.close()
    assert expired.value.status == 410


async def test_bodies_are_validated_against_the_official_schemas(
    core: client.CoreV1Api, kube_cluster: KubeCluster
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "odd"},
        "spec": {"containers": [{"name": "c", "image": "x", "bogusField": True}]},
    }
    with pytest.raises(ApiException) as invalid:
        await core.create_namespaced_pod(kube_cluster.namespace, pod)
    assert invalid.value.status == 422
    with pytest.raises(ApiException) as bad_name:
        await core.create_namespaced_config_map(kube_cluster.namespace, config_map("Not_A_Name"))
    assert bad_name.value.status == 422


async def test_a_resource_quota_refuses_the_pod_past_it(
    core: client.CoreV1Api, kube_cluster: KubeCluster
) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "two"},
        "spec": {"hard": {"pods": "0"}},
    }
    await core.create_namespaced_resource_quota(kube_cluster.namespace, quota)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    with pytest.raises(ApiException) as refused:
        await core.create_namespaced_pod(kube_cluster.namespace, pod)
    assert refused.value.status == 403 and "exceeded quota: two" in refused.value.body
