"""build_elector picks the backend named by LEADER_ELECTION_BACKEND."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamspace.config.agent import AgentSettings
from streamspace.errors import ConfigError
from streamspace.leader.factory import build_elector
from streamspace.leader.file import FileLeaderElector


def settings(backend: str, tmp_path: Path) -> AgentSettings:
    return AgentSettings(
        AGENT_ID="docker-prod-host1",
        CONTROL_PLANE_URL="wss://streamspace-api.example.com",
        LEADER_ELECTION_BACKEND=backend,
        LOCK_FILE_PATH=str(tmp_path / "agent.lock"),
        POD_NAME="replica-a",
    )


def test_file_backend_uses_the_lock_file_and_pod_name(tmp_path: Path) -> None:
    elector = build_elector(settings("file", tmp_path))
    assert isinstance(elector, FileLeaderElector)
    assert elector.path == tmp_path / "agent.lock"
    assert (elector.agent_id, elector.identity, elector.lease_duration) == (
        "docker-prod-host1",
        "replica-a",
        15.0,
    )


def test_kubernetes_backend_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not available in this build yet"):
        build_elector(settings("kubernetes", tmp_path))
