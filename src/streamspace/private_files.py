"""Files and directories private to the process's user: created 0600/0700 with no moment at
which another user could read them, and tightened (with a log line) when an earlier install
left them looser. Used by the control plane's data directory and the agent's key file."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def tighten(path: Path, *, mode: int) -> None:
    """Take every bit beyond `mode` off `path` (if it exists), saying so in the log. A file the
    process may not chmod (a volume owned by another user) is left as it is, with a warning."""
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return
    if path.is_symlink() or not current & ~mode:
        return
    try:
        os.chmod(path, current & mode)
    except OSError as exc:
        # A directory mounted for the process but not owned by it (a Kubernetes emptyDir is
        # 0777, and the chart's pods keep their database in PostgreSQL): nothing the operator
        # can change on every start, so said at INFO. A file that stays readable is a warning.
        level = logging.INFO if path.is_dir() else logging.WARNING
        log.log(
            level, "%s is mode %o and could not be tightened to %o: %s", path, current, mode, exc
        )
        return
    log.warning(
        "tightened %s from mode %o to %o (readable by other users before)", path, current, mode
    )


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as 0700, or tighten it to 0700 if it exists."""
    if not path.exists():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask
        return
    tighten(path, mode=DIR_MODE)


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file no other user can read at any moment (created 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # an existing file keeps its mode through O_TRUNC: before writing
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
