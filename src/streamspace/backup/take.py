"""`streamspace backup`: the database (one consistent snapshot, online), the data directory's
secrets and, where the Docker engine is, the users' home volumes, into one archive."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from streamspace import __version__
from streamspace.agents.platforms.docker_homes import DockerHomes, HomeVolume
from streamspace.backup import secrets
from streamspace.backup.archive import (
    DATABASE_DIR,
    HOMES_DIR,
    SECRETS_DIR,
    Manifest,
    home_file,
    pack,
)
from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.db.dump import DatabaseDump, Progress, dump_database
from streamspace.control_plane.db.engine import create_engine, sqlite_path
from streamspace.control_plane.db.records import INSTALLATION_KEY, SystemSettingRecord
from streamspace.errors import Conflict, NotFound, ValidationFailed


@dataclass(frozen=True)
class HomesSource:
    """Which Docker engine's home volumes to take, and the local image their helper uses."""

    helper_image: str
    docker_url: str | None = None
    agent_id: str | None = None  # only this agent's homes (engines shared by installations)


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    size: int


async def take_backup(
    settings: ControlPlaneSettings,
    *,
    archive: Path,
    database: bool,
    homes: HomesSource | None,
    overwrite: bool,
    progress: Progress,
) -> BackupResult:
    _check_destination(archive, overwrite=overwrite)
    if not database and homes is None:
        raise ValidationFailed("nothing to back up: leave the database in or add --homes")
    with tempfile.TemporaryDirectory(prefix=".streamspace-backup-", dir=archive.parent) as tmp:
        staging = Path(tmp)
        dump, modes = None, {}
        if database:
            dump = await _dump(settings, staging=staging, progress=progress)
            modes = secrets.collect(settings.data_dir, into=staging / SECRETS_DIR)
        volumes = (
            []
            if homes is None
            else await _homes(
                homes,
                installation=await _installation(settings),
                staging=staging,
                progress=progress,
            )
        )
        manifest = Manifest(
            created_at=datetime.now(UTC).isoformat(),
            streamspace_version=__version__,
            database=dump,
            secrets=modes,
            homes=volumes,
        )
        size = pack(staging, manifest=manifest, archive=archive, progress=progress)
    return BackupResult(manifest=manifest, size=size)


def _check_destination(archive: Path, *, overwrite: bool) -> None:
    if not archive.parent.is_dir():
        raise NotFound(f"{archive.parent}: no such directory")
    if archive.exists() and not overwrite:
        raise Conflict(f"{archive} exists already: name another file, or pass --overwrite")


async def _dump(
    settings: ControlPlaneSettings, *, staging: Path, progress: Progress
) -> DatabaseDump:
    path = sqlite_path(settings)
    if path is not None and not path.is_file():  # do not leave an empty database behind
        raise NotFound(f"no database at {path}: set STREAMSPACE_DATA_DIR or DATABASE_URL")
    engine = create_engine(settings)
    try:
        return await dump_database(engine, directory=staging / DATABASE_DIR, progress=progress)
    finally:
        await engine.dispose()


async def _installation(settings: ControlPlaneSettings) -> str | None:
    """The installation id in the database being backed up (None without a database, or
    from before installation ids): its homes, not another installation's on the engine."""
    path = sqlite_path(settings)
    if path is not None and not path.is_file():
        return None
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(
                select(SystemSettingRecord.value).where(SystemSettingRecord.key == INSTALLATION_KEY)
            )
    except SQLAlchemyError:  # no such table yet: nothing to tell installations apart by
        return None
    finally:
        await engine.dispose()


async def _homes(
    source: HomesSource, *, installation: str | None, staging: Path, progress: Progress
) -> list[HomeVolume]:
    docker = DockerHomes(helper_image=source.helper_image, docker_url=source.docker_url)
    try:
        await docker.check_helper_image()
        volumes = await docker.list_homes(agent_id=source.agent_id, installation_id=installation)
        (staging / HOMES_DIR).mkdir(parents=True, exist_ok=True)
        for volume in volumes:
            progress.step(f"home {volume.name}", total=None, unit="bytes")
            into = home_file(staging, volume.name)
            await docker.export(volume, into=into, advance=progress.advance)
        return volumes
    finally:
        await docker.close()
