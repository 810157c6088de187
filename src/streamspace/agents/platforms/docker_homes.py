"""Users' home volumes in and out of a backup: each StreamSpace home volume (found by the
labels DockerPlatform gives it) read or written as one tar stream through a helper container
that is created from a local image, never started, and removed. Owns these aiodocker calls;
the archive around the streams belongs to streamspace.backup."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp

from streamspace.agents.platforms.docker_client import LazyDockerClient, docker_errors
from streamspace.agents.platforms.docker_model import (
    LABEL_AGENT,
    LABEL_INSTALLATION,
    LABEL_TEMPLATE,
    LABEL_USER,
)
from streamspace.errors import Conflict, PlatformError

# The volume is mounted here in the helper; its tar stream has one root entry, `home/`.
HELPER_PARENT = "/streamspace-backup"
HELPER_MOUNT = f"{HELPER_PARENT}/home"
LABEL_HELPER = "streamspace.backup-helper"
_CHUNK = 1 << 20
# A big home streams for minutes: no total limit, only a stalled engine fails the copy.
_STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)

Advance = Callable[[int], None]


@dataclass(frozen=True)
class HomeVolume:
    name: str
    labels: dict[str, str]


class DockerHomes(LazyDockerClient):
    """Lists, exports and restores the home volumes on one Docker engine."""

    def __init__(self, *, helper_image: str, docker_url: str | None = None) -> None:
        self._helper_image = helper_image
        self._docker_url = docker_url
        self._client: aiodocker.Docker | None = None

    async def check_helper_image(self) -> None:
        """Fail before any work when the helper image is not on this engine: nothing is pulled."""
        with docker_errors("looking up the helper image"):
            try:
                await self._docker.images.inspect(self._helper_image)
            except aiodocker.DockerError as exc:
                if exc.status != 404:
                    raise
                raise PlatformError(
                    f"the helper image {self._helper_image} is not on this Docker host (it is "
                    "created, never run, and never pulled): build it with images/build.sh or "
                    "name any local image with --helper-image",
                    code="image_not_found",
                ) from exc

    async def list_homes(
        self, *, agent_id: str | None = None, installation_id: str | None = None
    ) -> list[HomeVolume]:
        """The home volumes (of one agent's sessions, of one installation's, when given: its
        own and the unlabelled ones from before installation ids), by name."""
        labels = [LABEL_USER, LABEL_TEMPLATE]
        if agent_id is not None:
            labels.append(f"{LABEL_AGENT}={agent_id}")
        with docker_errors("listing home volumes"):
            found = await self._docker.volumes.list(filters={"label": labels})  # type: ignore[no-untyped-call]
        volumes = [
            HomeVolume(v["Name"], dict(v.get("Labels") or {})) for v in found["Volumes"] or []
        ]
        if installation_id is not None:
            volumes = [
                v
                for v in volumes
                if v.labels.get(LABEL_INSTALLATION, installation_id) == installation_id
            ]
        return sorted(volumes, key=lambda v: v.name)

    async def existing(self, names: list[str]) -> list[str]:
        """Those of `names` that are volumes on this engine already."""
        wanted = set(names)
        with docker_errors("listing volumes"):
            found = await self._docker.volumes.list()  # type: ignore[no-untyped-call]
        return sorted(wanted & {v["Name"] for v in found["Volumes"] or []})

    async def export(self, volume: HomeVolume, *, into: Path, advance: Advance) -> int:
        """Write the volume's files as a tar stream (ownership, modes, links kept) to `into`;
        returns its size. The volume is mounted read-only: a running session keeps writing."""
        written = 0
        async with self._helper(volume.name, read_only=True) as helper:
            with docker_errors(f"reading home volume {volume.name}"):
                async with self._docker._query(
                    f"containers/{helper}/archive",
                    params={"path": HELPER_MOUNT},
                    timeout=_STREAM_TIMEOUT,
                ) as response:
                    with into.open("wb") as out:
                        async for chunk in response.content.iter_chunked(_CHUNK):
                            out.write(chunk)
                            written += len(chunk)
                            advance(len(chunk))
        return written

    async def restore(self, volume: HomeVolume, *, source: Path, advance: Advance) -> None:
        """Create the volume with its name and labels and unpack `source` into it. An existing
        volume is never written into."""
        if await self.existing([volume.name]):
            raise Conflict(f"home volume {volume.name} exists already", code="volume_exists")
        with docker_errors(f"creating home volume {volume.name}"):
            await self._docker.volumes.create({"Name": volume.name, "Labels": volume.labels})  # type: ignore[no-untyped-call]
        try:
            await self._unpack(volume.name, source=source, advance=advance)
        except BaseException:
            with contextlib.suppress(PlatformError):  # half a home is no home
                await self.remove(volume.name)
            raise

    async def _unpack(self, name: str, *, source: Path, advance: Advance) -> None:
        async with self._helper(name, read_only=False) as helper:
            with docker_errors(f"writing home volume {name}"):
                async with self._docker._query(
                    f"containers/{helper}/archive",
                    method="PUT",
                    params={"path": HELPER_PARENT},
                    data=_chunks(source, advance),
                    headers={"Content-Type": "application/x-tar"},
                    timeout=_STREAM_TIMEOUT,
                ):
                    pass

    async def remove(self, name: str) -> None:
        with docker_errors(f"removing home volume {name}"):
            volume = await self._docker.volumes.get(name)  # type: ignore[no-untyped-call]
            await volume.delete()

    @contextlib.asynccontextmanager
    async def _helper(self, volume: str, *, read_only: bool) -> AsyncIterator[str]:
        """A container that only holds the volume's mount for the archive API."""
        config: dict[str, Any] = {
            "Image": self._helper_image,
            "Entrypoint": ["/bin/true"],
            "NetworkDisabled": True,
            "Labels": {LABEL_HELPER: "true"},
            "HostConfig": {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": volume,
                        "Target": HELPER_MOUNT,
                        "ReadOnly": read_only,
                    }
                ]
            },
        }
        with docker_errors(f"creating a helper container for {volume}"):
            container = await self._docker.containers.create(config)
        try:
            yield container.id
        finally:
            with contextlib.suppress(aiodocker.DockerError, aiohttp.ClientError):
                await container.delete(force=True)


async def _chunks(source: Path, advance: Advance) -> AsyncIterator[bytes]:
    with source.open("rb") as data:
        while chunk := data.read(_CHUNK):
            advance(len(chunk))
            yield chunk
