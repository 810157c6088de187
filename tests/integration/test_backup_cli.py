"""`streamspace backup` and `restore` as an operator types them: a round trip between two data
directories, and one clear line (exit 2, no traceback) for each mistake."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamspace.cli import app


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A data directory with a database holding a user."""
    data = tmp_path / "source"
    run(data, "users", "create", "alice", env={"STREAMSPACE_NEW_USER_PASSWORD": "alice-pass-1"})
    return data


def run(data_dir: Path, *args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    environment = {"STREAMSPACE_DATA_DIR": str(data_dir), "DATABASE_URL": "", **(env or {})}
    result = CliRunner().invoke(app, list(args), env=environment)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == code, output
    assert "Traceback" not in output
    return output


def test_backup_then_restore_into_a_new_data_directory(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "site.tar.gz"
    assert "backed up" in run(source, "backup", str(archive))
    target = tmp_path / "target"
    assert "restored" in run(target, "restore", str(archive))
    again = run(
        target, "users", "create", "alice", env={"STREAMSPACE_NEW_USER_PASSWORD": "x" * 8}, code=2
    )
    assert "already exists" in again


def test_mistakes_are_one_line_each(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "site.tar.gz"
    run(source, "backup", str(archive))
    assert "exists already" in run(source, "backup", str(archive), code=2)
    assert "no such directory" in run(source, "backup", str(tmp_path / "no" / "x.tgz"), code=2)
    assert "no database at" in run(tmp_path / "empty", "backup", str(tmp_path / "e.tgz"), code=2)
    assert "no such backup file" in run(source, "restore", str(tmp_path / "nope.tgz"), code=2)
    text = tmp_path / "notes.txt"
    text.write_text("not an archive\n")
    assert "not a readable StreamSpace backup" in run(source, "restore", str(text), code=2)
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    assert "not a StreamSpace backup" in run(source, "restore", str(other), code=2)
    assert "already holds StreamSpace data" in run(source, "restore", str(archive), code=2)
    assert "restored" in run(source, "restore", "--replace", str(archive))
