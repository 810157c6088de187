"""File backend: an exclusive `flock` on LOCK_FILE_PATH, for replicas sharing one host.

The kernel drops the lock when the holder dies, so crash failover takes one retry period.
The file's text shows the holder (`cat agent.lock`) and keeps the epoch (generation) counter.
A flock has no expiry: a paused but living holder keeps leadership until it resumes or dies.
"""

from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path

from streamspace.leader.base import LeaderElector, epoch_seed

# The file is a few bytes on a local disk: the calls below are done inline, not in a thread.


class FileLeaderElector(LeaderElector):
    """Leadership = holding `flock(LOCK_EX)` on the lock file through an open descriptor."""

    def __init__(self, *, agent_id: str, identity: str, lease_duration: float, path: Path) -> None:
        super().__init__(agent_id=agent_id, identity=identity, lease_duration=lease_duration)
        self.path = path
        self._fd: int | None = None
        self._epoch = 0

    async def try_acquire(self) -> int | None:
        if self._fd is not None:
            return self._epoch
        fd = self._lock()
        if fd is None:
            return None
        self._fd = fd
        self._epoch = _read_epoch(fd) + 1
        _write_fields(fd, self._describe(holder=self.identity, event="acquired_at"))
        return self._epoch

    async def renew(self) -> bool:
        """Still ours while the descriptor is open and still names the file at `path`."""
        if self._fd is None:
            return False
        if not _same_file(self._fd, self.path):
            self._close()
            return False
        return True

    async def release(self) -> None:
        if self._fd is None:
            return
        if _same_file(self._fd, self.path):
            _write_fields(self._fd, self._describe(holder="", event="released_at"))
        self._close()

    async def current_holder(self) -> str | None:
        if self._fd is not None:
            return self.identity
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_text(fd).get("holder") or None
        else:
            return None
        finally:
            os.close(fd)

    async def close(self) -> None:
        self._close()

    def _lock(self) -> int | None:
        """Open and lock the file; None when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # O_CLOEXEC: children never hold it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if not _same_file(fd, self.path):  # unlinked between our open and our lock
            os.close(fd)
            return None
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def _describe(self, *, holder: str, event: str) -> dict[str, str]:
        return {
            "agent_id": self.agent_id,
            "holder": holder,
            "epoch": str(self._epoch),
            "pid": str(os.getpid()),
            event: datetime.now(UTC).isoformat(timespec="seconds"),
        }


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_text(fd: int) -> dict[str, str]:
    raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    pairs = (line.partition("=") for line in raw.splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def _read_epoch(fd: int) -> int:
    """The generation counter kept in the file; a fresh seed for a new or unreadable file."""
    value = _read_text(fd).get("epoch", "")
    return int(value) if value.isdigit() else epoch_seed()


def _write_fields(fd: int, fields: dict[str, str]) -> None:
    data = "".join(f"{key}={value}\n" for key, value in fields.items()).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
