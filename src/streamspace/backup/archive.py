"""The backup archive: one gzipped tar holding `manifest.json` (first), `database/<table>.jsonl`,
`secrets/<file>` and `homes/<volume>.tar`. Packs a staged directory into one (mode 0600: it
holds secrets and password hashes) and unpacks one after checking it is a backup this
StreamSpace reads. What goes into the staged directory belongs to take.py."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from streamspace.agents.platforms.docker_homes import HomeVolume
from streamspace.control_plane.db.dump import DatabaseDump, Progress, TableDump, table_file
from streamspace.control_plane.db.portable import KINDS
from streamspace.errors import NotFound, ValidationFailed

FORMAT = "streamspace-backup"
VERSION = 1
MANIFEST = "manifest.json"
DATABASE_DIR = "database"
SECRETS_DIR = "secrets"
HOMES_DIR = "homes"


@dataclass(frozen=True)
class Manifest:
    """What a backup holds; `database` is None and `homes` empty when left out."""

    created_at: str
    streamspace_version: str
    database: DatabaseDump | None
    secrets: dict[str, int] = field(default_factory=dict)  # file name -> its mode
    homes: list[HomeVolume] = field(default_factory=list)

    def to_json(self) -> bytes:
        body = {"format": FORMAT, "version": VERSION, **asdict(self)}
        return json.dumps(body, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, *, source: Path) -> Manifest:
        try:
            body = json.loads(raw)
            if body.get("format") != FORMAT:
                raise ValueError("not a StreamSpace backup")
            if body.get("version") != VERSION:
                raise ValueError(f"backup format version {body.get('version')} is not {VERSION}")
            return cls(
                created_at=str(body["created_at"]),
                streamspace_version=str(body["streamspace_version"]),
                database=_database(body["database"]),
                secrets={str(k): int(v) for k, v in body["secrets"].items()},
                homes=[HomeVolume(str(h["name"]), dict(h["labels"])) for h in body["homes"]],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValidationFailed(f"{source}: unreadable backup manifest ({exc})") from exc


def _database(body: dict[str, Any] | None) -> DatabaseDump | None:
    if body is None:
        return None
    tables = []
    for t in body["tables"]:
        if not set(t["columns"].values()) <= KINDS:
            raise ValueError(f"unknown column kinds in table {t['name']}")
        tables.append(
            TableDump(name=str(t["name"]), columns=dict(t["columns"]), rows=int(t["rows"]))
        )
    return DatabaseDump(dialect=str(body["dialect"]), revision=str(body["revision"]), tables=tables)


def home_file(staging: Path, volume: str) -> Path:
    return staging / HOMES_DIR / f"{volume}.tar"


class _Counting(io.RawIOBase):
    """A file whose reads advance a progress bar."""

    def __init__(self, raw: BinaryIO, progress: Progress) -> None:
        self._raw, self._progress = raw, progress

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._progress.advance(len(data))
        return data


def pack(staging: Path, *, manifest: Manifest, archive: Path, progress: Progress) -> int:
    """Write the archive (manifest first, then the staged files); returns its size. It appears
    under its name only once complete."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    progress.step("compressing", total=sum(p.stat().st_size for p in files), unit="bytes")
    partial = archive.with_name(f".{archive.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with (
            os.fdopen(descriptor, "wb") as out,
            tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tar,
        ):
            _add(tar, MANIFEST, io.BytesIO(manifest.to_json()), size=len(manifest.to_json()))
            for path in files:
                with path.open("rb") as data:
                    counted = _Counting(data, progress)
                    name = path.relative_to(staging).as_posix()
                    _add(tar, name, counted, size=path.stat().st_size, mode=path.stat().st_mode)
        os.replace(partial, archive)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return archive.stat().st_size


def _add(tar: tarfile.TarFile, name: str, data: Any, *, size: int, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode & 0o777, int(time.time())
    tar.addfile(info, data)


def unpack(archive: Path, *, into: Path, progress: Progress) -> Manifest:
    """Check the archive and unpack it into `into` in one pass; returns its manifest."""
    if not archive.is_file():
        raise NotFound(f"{archive}: no such backup file")
    progress.step("unpacking", total=archive.stat().st_size, unit="bytes")
    try:
        with (
            archive.open("rb") as raw,
            tarfile.open(fileobj=_Counting(raw, progress), mode="r|gz") as tar,
        ):
            manifest = _read_manifest(tar, source=archive)
            for member in tar:
                if member.name != MANIFEST:  # read already
                    tar.extract(member, into, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValidationFailed(f"{archive} is not a readable StreamSpace backup ({exc})") from exc
    _check_complete(manifest, into=into, source=archive)
    return manifest


def _read_manifest(tar: tarfile.TarFile, *, source: Path) -> Manifest:
    first = tar.next()
    data = tar.extractfile(first) if first is not None and first.name == MANIFEST else None
    if data is None:
        raise ValidationFailed(
            f"{source} is not a StreamSpace backup (it does not open with {MANIFEST})"
        )
    return Manifest.from_json(data.read(), source=source)


def _check_complete(manifest: Manifest, *, into: Path, source: Path) -> None:
    expected = [into / SECRETS_DIR / name for name in manifest.secrets]
    expected += [home_file(into, volume.name) for volume in manifest.homes]
    if manifest.database is not None:
        expected += [table_file(into / DATABASE_DIR, t.name) for t in manifest.database.tables]
    missing = [p.relative_to(into).as_posix() for p in expected if not p.is_file()]
    if missing:
        raise ValidationFailed(f"{source} is incomplete: it lacks {', '.join(missing)}")
