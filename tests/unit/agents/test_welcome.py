"""The agent takes its installation from the control plane's welcome, and still works with a
control plane from before installation ids (no `installationId`) or a malformed one."""

from __future__ import annotations

from streamspace.agents.platforms.memory import MemoryPlatform
from streamspace.agents.runtime import AgentRuntime
from streamspace.config import AgentSettings
from streamspace.protocol import encode, make


def runtime() -> AgentRuntime:
    settings = AgentSettings(
        agent_id="agent-1", control_plane_url="http://127.0.0.1:9", platform="memory", api_key="k"
    )
    return AgentRuntime(settings=settings, platform=MemoryPlatform(), key="k")


def welcome(agent: AgentRuntime, payload: dict[str, object]) -> None:
    agent._on_frame(encode(make("welcome", payload)))


def test_the_welcome_names_the_installation() -> None:
    agent = runtime()
    welcome(agent, {"pod": "api-1", "heartbeatInterval": 30, "installationId": "ab" * 16})
    assert agent.platform.installation_id == "ab" * 16


def test_an_older_control_plane_leaves_the_agent_as_it_was() -> None:
    agent = runtime()
    welcome(agent, {"pod": "api-1", "heartbeatInterval": 30})
    assert agent.platform.installation_id is None
    welcome(agent, {"pod": "api-1", "installationId": "../../not hex"})
    assert agent.platform.installation_id is None
