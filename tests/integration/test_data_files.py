"""The data directory on disk, private to the service's user: `streamspace up` on a fresh data
dir creates it 0700 with the SQLite database, its -wal and -shm journals (where the JWT signing
secret lives) and the generated admin password 0600; started on a data dir an earlier install
left readable by others, it tightens every one of them and logs that it did."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import VENV_BIN, Proc, free_port, wait_until

PRIVATE_FILES = ("streamspace.db", "streamspace.db-wal", "streamspace.db-shm", "admin-password")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Up(Proc):
    """`streamspace up` on `data_dir`, without a local agent."""

    def __init__(self, *, data_dir: Path, log_dir: Path) -> None:
        self.port = free_port()
        super().__init__(
            name=f"up-{self.port}",
            log_dir=log_dir,
            args=[str(VENV_BIN / "streamspace"), "up"],
            env={
                "STREAMSPACE_DATA_DIR": str(data_dir),
                "STREAMSPACE_PORT": str(self.port),
                "STREAMSPACE_HOST": "127.0.0.1",
                "STREAMSPACE_LOCAL_AGENT": "0",
            },
        )

    def start(self) -> Up:
        super().start()
        wait_until(self.healthy, timeout=60, what="streamspace up")
        return self

    def healthy(self) -> bool:
        if not self.alive:
            raise RuntimeError(f"streamspace up exited:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Up]]:
    procs: list[Up] = []
    yield procs
    for proc in procs:
        proc.stop()


def test_a_fresh_data_dir_is_private(tmp_path: Path, started: list[Up]) -> None:
    data = tmp_path / "fresh" / "data"
    started.append(Up(data_dir=data, log_dir=tmp_path).start())
    assert mode(data) == 0o700
    for name in PRIVATE_FILES:  # the journals exist while the database is open
        assert mode(data / name) == 0o600, name


def test_a_data_dir_left_readable_is_tightened_on_start(tmp_path: Path, started: list[Up]) -> None:
    data = tmp_path / "data"
    first = Up(data_dir=data, log_dir=tmp_path).start()
    first.stop()
    # as an install before this fix left them: world-readable directory, database and secrets
    (data / "local-agent.key").write_text("ssa_an-agent-key\n")
    loose = [*PRIVATE_FILES[:1], "admin-password", "local-agent.key"]
    data.chmod(0o755)
    for name in loose:
        (data / name).chmod(0o644)
    for name in ("streamspace.db-wal", "streamspace.db-shm"):
        if (data / name).exists():
            (data / name).chmod(0o644)

    again = Up(data_dir=data, log_dir=tmp_path).start()
    started.append(again)
    assert mode(data) == 0o700
    for name in [*PRIVATE_FILES, "local-agent.key"]:
        assert mode(data / name) == 0o600, name
    log = again.log()
    assert f"tightened {data} from mode 755 to 700" in log
    assert f"tightened {data / 'streamspace.db'} from mode 644 to 600" in log
    assert f"tightened {data / 'admin-password'} from mode 644 to 600" in log
