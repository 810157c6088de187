"""What every owner of an aiodocker client (the platform, the backup's home copier) shares:
the client, created on first use inside the running loop that will own its HTTP session and
closed by `close`, and engine failures turned into PlatformError."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiodocker
import aiohttp

from streamspace.errors import PlatformError


@contextlib.contextmanager
def docker_errors(action: str) -> Iterator[None]:
    """Turn engine failures into PlatformError, so callers see one error family."""
    try:
        yield
    except aiodocker.DockerError as exc:
        raise PlatformError(f"docker: {action} failed: {exc.message}") from exc
    except aiohttp.ClientError as exc:
        raise PlatformError(f"docker: {action} failed: cannot reach the engine ({exc})") from exc


class LazyDockerClient:
    """Mixin: `_docker` is the engine client for `_docker_url` (None: the local socket)."""

    _docker_url: str | None
    _client: aiodocker.Docker | None = None

    @property
    def _docker(self) -> aiodocker.Docker:
        if self._client is None:
            self._client = aiodocker.Docker(url=self._docker_url)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
