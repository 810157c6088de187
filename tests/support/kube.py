"""The `kube_cluster` fixture: a fresh namespace on the Kubernetes API test double (one double
per test session, its pods on the local Docker engine), or on the real cluster that
STREAMSPACE_TEST_KUBECONFIG names. Failure-injection controls exist only on the double.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from streamspace.kubeconn import api_client
from tests.support.docker import unavailable
from tests.support.kubeapi import KubeApiDouble


@dataclass
class KubeCluster:
    kubeconfig: Path
    namespace: str
    double: KubeApiDouble | None

    @property
    def is_double(self) -> bool:
        return self.double is not None

    def _double(self) -> KubeApiDouble:
        if self.double is None:
            pytest.skip("this control needs the Kubernetes API test double")
        return self.double

    async def evict(self, pod: str) -> None:
        await self._double().control("evict", namespace=self.namespace, name=pod)

    async def lose_node(self, pod: str) -> None:
        await self._double().control("node-lost", namespace=self.namespace, name=pod)

    async def compact(self) -> None:
        await self._double().control("compact")

    async def drop_watches(self) -> None:
        await self._double().control("drop-watches")


def real_cluster() -> Path | None:
    path = os.environ.get("STREAMSPACE_TEST_KUBECONFIG")
    return Path(path) if path else None


@pytest.fixture(scope="session")
def kube_api_double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiDouble | None]:
    if real_cluster() is not None:
        yield None
        return
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        unavailable("no Docker engine: the Kubernetes API test double runs its pods as containers")
    double = KubeApiDouble(workdir=tmp_path_factory.mktemp("kubeapi")).start()
    try:
        yield double
    finally:
        double.stop()


@pytest.fixture
async def kube_cluster(
    kube_api_double: KubeApiDouble | None, tmp_path: Path
) -> AsyncIterator[KubeCluster]:
    namespace = f"ss-test-{uuid.uuid4().hex[:8]}"
    if kube_api_double is None:
        kubeconfig = real_cluster()
        assert kubeconfig is not None
    else:
        kubeconfig = kube_api_double.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    api = await api_client(kubeconfig=kubeconfig)
    core = client.CoreV1Api(api)
    try:
        await core.create_namespace(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        yield KubeCluster(kubeconfig=kubeconfig, namespace=namespace, double=kube_api_double)
    finally:
        try:
            await core.delete_namespace(namespace)
        finally:
            await api.close()


async def make_namespace(kubeconfig: Path, namespace: str) -> None:
    api = await api_client(kubeconfig=kubeconfig)
    try:
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    finally:
        await api.close()


async def drop_namespace(kubeconfig: Path, namespace: str) -> None:
    api = await api_client(kubeconfig=kubeconfig)
    try:
        await client.CoreV1Api(api).delete_namespace(namespace)
    finally:
        await api.close()


async def delete_lease(kube: KubeCluster, name: str) -> None:
    """Remove a Lease outright, as an operator's `kubectl delete lease` would."""
    api = await api_client(kubeconfig=kube.kubeconfig)
    try:
        await client.CoordinationV1Api(api).delete_namespaced_lease(name, kube.namespace)
    finally:
        await api.close()
