"""The files a control plane keeps on disk, private to its user: the data directory (0700), the
SQLite database with its -wal and -shm journals, and the secret files (0600). Created with those
modes, and tightened on start when an earlier install left them looser (private_files.py)."""

from __future__ import annotations

import os
from pathlib import Path

from streamspace.private_files import FILE_MODE, private_dir, tighten

# `streamspace up`'s generated admin password and its local agent's key (cli.py, embedded.py).
SECRET_FILES = ("admin-password", "local-agent.key")
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def secure_data_dir(data_dir: Path, *, create: bool) -> None:
    """The data directory 0700 and the secret files in it 0600. Without `create`, a data
    directory that does not exist (a PostgreSQL install) is left absent."""
    if not create and not data_dir.exists():
        return
    private_dir(data_dir)
    for name in SECRET_FILES:
        tighten(data_dir / name, mode=FILE_MODE)


def prepare_sqlite(database: Path) -> None:
    """Create the database file 0600 before SQLite opens it (SQLite would make it 0644 less
    the umask, and gives its -wal and -shm files the database file's mode), and tighten an
    existing one with its journals. Its directory is created 0700 if missing."""
    if not database.parent.exists():
        private_dir(database.parent)
    fd = os.open(database, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    tighten(database, mode=FILE_MODE)
    for suffix in SQLITE_COMPANIONS:
        tighten(database.with_name(database.name + suffix), mode=FILE_MODE)
