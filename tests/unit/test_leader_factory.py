"""build_elector picks the backend named by LEADER_ELECTION_BACKEND."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamspace.config.agent import AgentSettings, load_agent_settings
from streamspace.errors import ConfigError
from streamspace.leader.factory import build_elector
from streamspace.leader.file import FileLeaderElector
from streamspace.leader.kubernetes import KubernetesLeaseElector


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


def test_kubernetes_backend_is_the_lease_named_in_the_guide(tmp_path: Path) -> None:
    elector = build_elector(
        AgentSettings(
            AGENT_ID="k8s-prod-us-east-1",
            CONTROL_PLANE_URL="wss://streamspace-api.example.com",
            PLATFORM="kubernetes",
            ENABLE_HA="true",
            POD_NAME="streamspace-k8s-agent-7d9f-abcde",
            NAMESPACE="streamspace",
        )
    )
    assert isinstance(elector, KubernetesLeaseElector)
    assert elector.name == "streamspace-agent-k8s-prod-us-east-1"
    assert elector.identity == "streamspace-k8s-agent-7d9f-abcde"


def test_the_lease_needs_an_agent_id_kubernetes_can_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lowercase DNS name"):
        load_agent_settings(
            agent_id="K8s_Prod",
            control_plane_url="http://x",
            platform="kubernetes",
        )
