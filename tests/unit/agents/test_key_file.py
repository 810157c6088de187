"""An agent's key file (AGENT_KEY_FILE) is private to its user: written 0600 in a directory
created 0700, and an older file left readable by others is tightened when the agent reads it."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from streamspace.agents.key_store import FileKeyStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_stored_key_is_private(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "agent.key"
    await FileKeyStore(path).store("ssa_key")
    assert (mode(path.parent), mode(path)) == (0o700, 0o600)
    assert await FileKeyStore(path).read() == "ssa_key"


async def test_a_readable_key_file_is_tightened_on_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "agent.key"
    path.write_text("ssa_key\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert await FileKeyStore(path).read() == "ssa_key"
    assert mode(path) == 0o600
    assert f"tightened {path} from mode 644 to 600" in caplog.text
