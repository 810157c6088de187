"""The `kube_cluster` fixture: a fresh namespace on the Kubernetes API test double (one double
per test session, its pods on the local Docker engine), and on the real cluster that
STREAMSPACE_TEST_KUBECONFIG names. Every test using it runs once per target; the real-cluster
run is skipped (and counted as skipped) without that variable. Failure-injection controls
exist only on the double.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
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
def kube_api_double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiDouble]:
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


@asynccontextmanager
async def kube_namespace(
    target: str, *, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KubeCluster]:
    """A fresh namespace on `target`: "double" (the test double) or "cluster" (a real one)."""
    namespace = f"ss-test-{uuid.uuid4().hex[:8]}"
    double: KubeApiDouble | None = None
    if target == "cluster":
        kubeconfig = real_cluster()
        if kubeconfig is None:
            pytest.skip("STREAMSPACE_TEST_KUBECONFIG is not set: no real Kubernetes cluster")
    else:
        double = request.getfixturevalue("kube_api_double")
        kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    await make_namespace(kubeconfig, namespace)
    try:
        yield KubeCluster(kubeconfig=kubeconfig, namespace=namespace, double=double)
    finally:
        await drop_namespace(kubeconfig, namespace)


@pytest.fixture(params=["double", "cluster"])
async def kube_cluster(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KubeCluster]:
    async with kube_namespace(request.param, request=request, tmp_path=tmp_path) as kube:
        yield kube


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
