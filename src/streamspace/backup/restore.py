"""`streamspace restore`: a backup into an installation. Everything is checked before anything is
written (the archive, an empty target database, free secret files and volume names); then the
homes are restored, the database loaded in one transaction, and the secrets put in place. A
failure removes the volumes this run created and leaves the database as it was."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from streamspace.agents.platforms.docker_homes import DockerHomes
from streamspace.backup import secrets
from streamspace.backup.archive import DATABASE_DIR, SECRETS_DIR, Manifest, home_file, unpack
from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.db.dump import Progress
from streamspace.control_plane.db.engine import create_engine
from streamspace.control_plane.db.load import load_database, refuse_non_empty, rows_held
from streamspace.errors import Conflict, StreamSpaceError


@dataclass(frozen=True)
class HomesTarget:
    """The Docker engine home volumes are restored on, and the local image their helper uses."""

    helper_image: str
    docker_url: str | None = None


@dataclass(frozen=True)
class RestoreScope:
    database: bool  # the database and the data directory's secrets
    homes: HomesTarget | None
    replace: bool  # drop what the target database holds; overwrite secret files


async def restore_backup(
    settings: ControlPlaneSettings,
    *,
    archive: Path,
    scope: RestoreScope,
    work_dir: Path | None,
    progress: Progress,
) -> Manifest:
    with tempfile.TemporaryDirectory(prefix="streamspace-restore-", dir=work_dir) as tmp:
        staging = Path(tmp)
        manifest = unpack(archive, into=staging, progress=progress)
        with_database = scope.database and manifest.database is not None
        homes = scope.homes if manifest.homes else None
        docker = None if homes is None else DockerHomes(**vars(homes))
        try:
            if with_database:
                await _check_database(settings, replace=scope.replace)
                if not scope.replace:
                    secrets.check_free(
                        manifest.secrets, source=staging / SECRETS_DIR, data_dir=settings.data_dir
                    )
            if docker is not None:
                await _check_volumes(docker, manifest)
            await _apply(
                settings,
                manifest=manifest,
                staging=staging,
                docker=docker,
                with_database=with_database,
                replace=scope.replace,
                progress=progress,
            )
        finally:
            if docker is not None:
                await docker.close()
    return manifest


async def _check_database(settings: ControlPlaneSettings, *, replace: bool) -> None:
    """Fail fast (the load checks again, inside its transaction)."""
    if replace:
        return
    engine = create_engine(settings)
    try:
        held = await rows_held(engine)
    finally:
        await engine.dispose()
    refuse_non_empty(held)


async def _check_volumes(docker: DockerHomes, manifest: Manifest) -> None:
    await docker.check_helper_image()
    taken = await docker.existing([v.name for v in manifest.homes])
    if taken:
        raise Conflict(
            f"these home volumes exist on this Docker engine already: {', '.join(taken)}. "
            "Remove them (docker volume rm) to restore them from the backup, or pass --no-homes",
            code="volume_exists",
        )


async def _apply(
    settings: ControlPlaneSettings,
    *,
    manifest: Manifest,
    staging: Path,
    docker: DockerHomes | None,
    with_database: bool,
    replace: bool,
    progress: Progress,
) -> None:
    created: list[str] = []
    try:
        if docker is not None:
            for volume in manifest.homes:
                progress.step(f"home {volume.name}", total=None, unit="bytes")
                source = home_file(staging, volume.name)
                await docker.restore(volume, source=source, advance=progress.advance)
                created.append(volume.name)
        if with_database:
            await _load(
                settings, manifest=manifest, staging=staging, replace=replace, progress=progress
            )
            secrets.install(
                manifest.secrets, source=staging / SECRETS_DIR, data_dir=settings.data_dir
            )
    except BaseException:
        if docker is not None:
            for name in created:
                with contextlib.suppress(StreamSpaceError):
                    await docker.remove(name)
        raise


async def _load(
    settings: ControlPlaneSettings,
    *,
    manifest: Manifest,
    staging: Path,
    replace: bool,
    progress: Progress,
) -> None:
    assert manifest.database is not None
    engine = create_engine(settings)
    try:
        await load_database(
            engine,
            directory=staging / DATABASE_DIR,
            dump=manifest.database,
            replace=replace,
            progress=progress,
        )
    finally:
        await engine.dispose()
