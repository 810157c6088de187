"""Settings for every process, loaded once at the entry point and passed in."""

from streamspace.config.agent import AgentSettings, load_agent_settings
from streamspace.config.control_plane import ControlPlaneSettings, load_settings

__all__ = ["AgentSettings", "ControlPlaneSettings", "load_agent_settings", "load_settings"]
