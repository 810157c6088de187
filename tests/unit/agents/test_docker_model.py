"""How sessions map to Docker names, labels and config, and back to observed states (no I/O)."""

from __future__ import annotations

import re

from streamspace.agents.platforms.base import SessionSpec
from streamspace.agents.platforms.docker_model import (
    container_config,
    container_name,
    exit_detail,
    hibernated_name,
    is_hibernated_name,
    observed_from_summary,
    vnc_secret_from_inspect,
    volume_name,
)

DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def spec(**overrides: object) -> SessionSpec:
    fields: dict[str, object] = {
        "session_id": "s1",
        "user": "alice",
        "template": "terminal",
        "image": "streamspace/terminal:bookworm",
    }
    fields.update(overrides)
    return SessionSpec(**fields)  # type: ignore[arg-type]


def test_volume_names_are_valid_readable_and_distinct() -> None:
    names = {
        volume_name(user="a-b", template="c"),
        volume_name(user="a", template="b-c"),
        volume_name(user="a/b", template="c"),
        volume_name(user="a_b", template="c"),
        volume_name(user="ünï cödé@example.com", template="c"),
    }

    assert len(names) == 5
    assert all(DOCKER_NAME.fullmatch(name) for name in names)
    assert volume_name(user="alice", template="terminal").startswith(
        "streamspace-home-alice-terminal-"
    )


def test_hibernated_name_marks_the_state() -> None:
    assert is_hibernated_name("/" + hibernated_name("s1"))
    assert not is_hibernated_name("/" + container_name("s1"))
    assert DOCKER_NAME.fullmatch(container_name("../weird id"))


def test_config_has_limits_home_and_no_host_ports() -> None:
    config = container_config(
        spec=spec(cpu_limit=1.5, memory_limit_mb=512, env={"A": "1"}),
        agent_id="agent-1",
        network="net",
        vnc_secret="s3cr3t",
    )

    host = config["HostConfig"]
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Memory"] == 512 * 1024 * 1024
    assert host["Mounts"][0]["Target"] == "/home/user"
    assert "PortBindings" not in host and "PublishAllPorts" not in host
    assert config["Labels"]["streamspace.agent"] == "agent-1"
    assert "A=1" in config["Env"]


def test_config_without_persistent_home_mounts_nothing() -> None:
    config = container_config(
        spec=spec(persistent_home=False), agent_id="a", network="n", vnc_secret="x"
    )

    assert config["HostConfig"]["Mounts"] == []
    assert "streamspace.home" not in config["Labels"]


def test_the_agents_vnc_secret_wins_and_is_read_back_from_inspect() -> None:
    config = container_config(
        spec=spec(env={"VNC_PASSWORD": "from-template"}),
        agent_id="a",
        network="n",
        vnc_secret="agent-s",
    )

    assert "VNC_PASSWORD=agent-s" in config["Env"]
    assert "VNC_PASSWORD=from-template" not in config["Env"]
    assert vnc_secret_from_inspect({"Config": {"Env": config["Env"]}}) == "agent-s"
    # a container created before sessions had a secret: its VNC runs without a password
    assert vnc_secret_from_inspect({"Config": {"Env": ["VNC_PORT=5900"]}}) is None


def summary(*, state: str, name: str = "/ss-s1") -> dict[str, object]:
    return {
        "Id": "abc",
        "Names": [name],
        "State": state,
        "Status": "Exited (137) 2 seconds ago",
        "Labels": {"streamspace.session": "s1", "streamspace.vnc-port": "5900"},
        "NetworkSettings": {"Networks": {"net": {"IPAddress": "172.30.0.2"}}},
    }


def test_observed_states() -> None:
    def observe(**kwargs: str) -> tuple[str, str | None]:
        observed = observed_from_summary(summary(**kwargs), network="net")
        return observed.state, observed.vnc_host

    assert observe(state="running") == ("running", "172.30.0.2")
    assert observe(state="exited") == ("failed", None)
    assert observe(state="exited", name="/ss-s1.hibernated") == ("hibernated", None)
    assert observe(state="created") == ("starting", None)
    assert observe(state="removing") == ("missing", None)


def test_exit_detail_names_the_cause() -> None:
    assert exit_detail({"ExitCode": 137, "OOMKilled": False}) == "exited with code 137 (SIGKILL)"
    assert exit_detail({"ExitCode": 137, "OOMKilled": True}) == "killed: out of memory"
