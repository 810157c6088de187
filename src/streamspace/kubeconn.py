"""Connecting to the Kubernetes API: the in-cluster service account, else a kubeconfig file.

Owns client construction and the namespace default for the Kubernetes agent and the Lease
elector; not any API call. Errors become ConfigError with the fix in the message.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from streamspace.errors import ConfigError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster() -> bool:
    """Whether this process runs in a pod with a mounted service account."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT / "token").exists()


async def api_client(*, kubeconfig: Path | None) -> client.ApiClient:
    """A client for the in-cluster API server, or the one `kubeconfig` (else KUBECONFIG,
    else ~/.kube/config) names. An explicit kubeconfig wins over the service account."""
    configuration = client.Configuration()
    try:
        if kubeconfig is None and in_cluster():
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            await config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                client_configuration=configuration,
            )
    except (ConfigException, OSError, TypeError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ConfigError(
            f"no usable Kubernetes config: not running in a pod with a service account, "
            f"and {where} could not be loaded ({exc}); set KUBECONFIG"
        ) from exc
    return client.ApiClient(configuration=configuration)


def default_namespace(*, kubeconfig: Path | None) -> str:
    """The service account's namespace in a pod, else the kubeconfig context's, else default."""
    if kubeconfig is None and in_cluster():
        try:
            return (SERVICE_ACCOUNT / "namespace").read_text().strip() or "default"
        except OSError:
            return "default"
    try:
        _, active = config.list_kube_config_contexts(
            config_file=str(kubeconfig) if kubeconfig else None
        )
    except (ConfigException, OSError, TypeError):
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


def plain(api: client.ApiClient | None, obj: object) -> dict[str, Any]:
    """An API object as the server's JSON (camelCase keys), whatever model the client built."""
    if api is None:
        raise RuntimeError("the Kubernetes client is closed")
    found: dict[str, Any] = api.sanitize_for_serialization(obj)
    return found


class KubeConnection:
    """One API client, opened on first use inside the running loop, and the namespace it works
    in (NAMESPACE, else the default above). Shared by the agent's platform, its Lease elector
    and its key store."""

    def __init__(self, *, namespace: str | None, kubeconfig: Path | None) -> None:
        self._namespace, self._kubeconfig = namespace, kubeconfig
        self._client: client.ApiClient | None = None
        self._lock = asyncio.Lock()

    @property
    def namespace(self) -> str | None:
        return self._namespace

    async def open(self) -> tuple[client.ApiClient, str]:
        async with self._lock:
            if self._client is None:
                self._client = await api_client(kubeconfig=self._kubeconfig)
                self._namespace = self._namespace or default_namespace(kubeconfig=self._kubeconfig)
        assert self._namespace is not None
        return self._client, self._namespace

    def plain(self, obj: object) -> dict[str, Any]:
        return plain(self._client, obj)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
