"""Where an agent keeps the key it receives once on approval: a file (AGENT_KEY_FILE, 0600),
or on Kubernetes a Secret (AGENT_KEY_SECRET) that every replica of the agent shares, so a
standby that never saw the approval still holds the key when it takes over.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Protocol

from streamspace.config import AgentSettings
from streamspace.private_files import DIR_MODE, FILE_MODE, tighten, write_private

SECRET_KEY = "api-key"


class KeyStore(Protocol):
    """Reads and keeps one agent's own key."""

    async def read(self) -> str | None:
        """The stored key, or None when none is stored yet."""
        ...

    async def store(self, key: str) -> None:
        """Keep `key` for this and every later start."""
        ...

    async def close(self) -> None:
        """Release clients."""
        ...


class FileKeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    async def read(self) -> str | None:
        if not self.path.exists():
            return None
        tighten(self.path, mode=FILE_MODE)  # left readable by others by an earlier version
        return self.path.read_text().strip() or None

    async def store(self, key: str) -> None:
        self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        write_private(self.path, key + "\n")

    async def close(self) -> None:
        return None


class SecretKeyStore:
    """The key as `data.api-key` of one Secret in the agent's namespace."""

    def __init__(self, *, name: str, namespace: str | None, kubeconfig: Path | None) -> None:
        from streamspace.kubeconn import KubeConnection

        self.name = name
        self._kube = KubeConnection(namespace=namespace, kubeconfig=kubeconfig)

    def __str__(self) -> str:
        return f"Secret {self._kube.namespace or ''}/{self.name}".replace(" /", " ")

    async def _core(self) -> tuple[Any, str]:
        from kubernetes_asyncio import client

        api, namespace = await self._kube.open()
        return client.CoreV1Api(api), namespace

    async def read(self) -> str | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        core, namespace = await self._core()
        try:
            secret = await core.read_namespaced_secret(self.name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        encoded = (secret.data or {}).get(SECRET_KEY)
        if not encoded:
            return None
        return base64.b64decode(encoded).decode().strip() or None

    async def store(self, key: str) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        core, namespace = await self._core()
        data = {SECRET_KEY: base64.b64encode(key.encode()).decode()}
        body: Any = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "labels": {"app.kubernetes.io/part-of": "streamspace"}},
            "type": "Opaque",
            "data": data,
        }
        try:
            await core.create_namespaced_secret(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            await core.patch_namespaced_secret(self.name, namespace, {"data": data})

    async def close(self) -> None:
        await self._kube.close()


def key_store(settings: AgentSettings) -> KeyStore:
    """AGENT_KEY_SECRET when set (Kubernetes), else AGENT_KEY_FILE."""
    if settings.key_secret:
        return SecretKeyStore(
            name=settings.key_secret, namespace=settings.namespace, kubeconfig=settings.kubeconfig
        )
    return FileKeyStore(Path(settings.key_file))
