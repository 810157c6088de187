"""The secrets a data directory keeps in files, copied with their modes. The JWT secret and the
agents' key hashes live in the database and travel with it; settings given in the environment
(STREAMSPACE_JWT_SECRET, AGENT_BOOTSTRAP_KEY, DATABASE_URL's password) are the operator's to
keep."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from streamspace.control_plane.db.files import SECRET_FILES
from streamspace.errors import Conflict
from streamspace.private_files import private_dir


def collect(data_dir: Path, *, into: Path) -> dict[str, int]:
    """Copy the secret files the data dir has into `into`; returns each one's mode."""
    modes = {}
    for name in SECRET_FILES:
        source = data_dir / name
        if source.is_file():
            into.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, into / name)
            modes[name] = source.stat().st_mode & 0o777
    return modes


def clashes(modes: dict[str, int], *, source: Path, data_dir: Path) -> list[str]:
    """Files the restore would overwrite with different content."""
    return [
        name
        for name in modes
        if (data_dir / name).is_file()
        and (data_dir / name).read_bytes() != (source / name).read_bytes()
    ]


def check_free(modes: dict[str, int], *, source: Path, data_dir: Path) -> None:
    taken = clashes(modes, source=source, data_dir=data_dir)
    if taken:
        raise Conflict(
            f"{data_dir} already has other {', '.join(taken)}: restore into a fresh data "
            "directory, or pass --replace to overwrite them",
            code="secrets_exist",
        )


def install(modes: dict[str, int], *, source: Path, data_dir: Path) -> None:
    """Put each file in place, atomically (written beside, then renamed), with its recorded
    mode less anything beyond the owner's read and write."""
    private_dir(data_dir)
    for name, recorded in modes.items():
        mode = recorded & 0o600  # a backup of an older, looser install restores private
        partial = data_dir / f".{name}.partial"
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as out:
            out.write((source / name).read_bytes())
        os.chmod(partial, mode)  # the umask may have taken bits off
        os.replace(partial, data_dir / name)
