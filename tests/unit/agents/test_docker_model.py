"""How sessions map to Docker names, labels and config, and back to observed states (no I/O)."""

from __future__ import annotations

import re

import pytest

from streamspace.agents.platforms.base import LimitPolicy, SessionSpec, resolve_limits
from streamspace.agents.platforms.docker_model import (
    PRIVATE_RANGES,
    bridge_name,
    chain_name,
    container_config,
    container_name,
    exit_detail,
    hibernated_name,
    is_hibernated_name,
    network_config,
    observed_from_summary,
    owned,
    resolvers,
    seal_rules,
    session_network,
    vnc_secret_from_inspect,
    volume_name,
)
from streamspace.errors import PlatformError

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


def test_each_installation_has_its_own_home_volumes() -> None:
    first = volume_name(user="alice", template="terminal", installation_id="0123456789abcdef")
    second = volume_name(user="alice", template="terminal", installation_id="fedcba9876543210")

    assert first != second
    assert first.startswith("streamspace-home-01234567-alice-terminal-")
    assert DOCKER_NAME.fullmatch(first)
    assert first != volume_name(user="alice", template="terminal")


def test_an_agent_owns_its_installation_and_its_unlabelled_legacy_objects() -> None:
    mine = {"streamspace.agent": "a", "streamspace.installation": "i1"}
    theirs = {"streamspace.agent": "a", "streamspace.installation": "i2"}
    legacy = {"streamspace.agent": "a"}
    other_agent = {"streamspace.agent": "b", "streamspace.installation": "i1"}

    assert owned(mine, agent_id="a", installation_id="i1")
    assert not owned(theirs, agent_id="a", installation_id="i1")
    assert owned(legacy, agent_id="a", installation_id="i1")
    assert not owned(other_agent, agent_id="a", installation_id="i1")
    # with a control plane from before installation ids: the agent id alone
    assert owned(theirs, agent_id="a", installation_id=None)


def test_hibernated_name_marks_the_state() -> None:
    assert is_hibernated_name("/" + hibernated_name("s1"))
    assert not is_hibernated_name("/" + container_name("s1"))
    assert DOCKER_NAME.fullmatch(container_name("../weird id"))


def config_for(
    session: SessionSpec,
    policy: LimitPolicy | None = None,
    *,
    installation_id: str | None = None,
    home: str | None = "streamspace-home-x",
) -> dict[str, object]:
    limits = resolve_limits(session, policy or LimitPolicy())
    return container_config(
        spec=session,
        agent_id="agent-1",
        installation_id=installation_id,
        network="net",
        home=home,
        limits=limits,
        vnc_secret="s3cr3t",
    )


def test_config_has_limits_home_and_no_host_ports() -> None:
    config = config_for(
        spec(cpu_limit=1.5, memory_limit_mb=512, env={"A": "1"}),
        installation_id="i1",
        home="streamspace-home-x",
    )

    host = config["HostConfig"]
    assert isinstance(host, dict)
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Memory"] == 512 * 1024 * 1024
    assert host["PidsLimit"] == 1024
    assert host["Mounts"][0]["Target"] == "/home/user"
    assert "PortBindings" not in host and "PublishAllPorts" not in host
    assert host["Mounts"][0]["Source"] == "streamspace-home-x"
    assert config["Labels"]["streamspace.agent"] == "agent-1"  # type: ignore[index]
    assert config["Labels"]["streamspace.installation"] == "i1"  # type: ignore[index]
    assert config["Labels"]["streamspace.home"] == "streamspace-home-x"  # type: ignore[index]
    assert "A=1" in config["Env"]  # type: ignore[operator]


def test_config_drops_every_capability_but_the_entrypoints() -> None:
    host = config_for(spec())["HostConfig"]

    assert host["CapDrop"] == ["ALL"]  # type: ignore[index]
    assert sorted(host["CapAdd"]) == ["CHOWN", "SETGID", "SETUID"]  # type: ignore[index]
    assert host["SecurityOpt"] == ["no-new-privileges"]  # type: ignore[index]


def test_template_without_limits_gets_the_agents_defaults() -> None:
    policy = LimitPolicy(cpu=0.5, memory_mb=300, pids=99)

    host = config_for(spec(), policy)["HostConfig"]

    assert host["NanoCpus"] == 500_000_000  # type: ignore[index]
    assert host["Memory"] == 300 * 1024 * 1024  # type: ignore[index]
    assert host["PidsLimit"] == 99  # type: ignore[index]


@pytest.mark.parametrize(("cpu", "memory"), [(0, None), (None, 0), (0, 0)])
def test_unlimited_is_refused_unless_the_agent_allows_it(
    cpu: float | None, memory: int | None
) -> None:
    session = spec(cpu_limit=cpu, memory_limit_mb=memory)

    with pytest.raises(PlatformError, match="unlimited") as refused:
        resolve_limits(session, LimitPolicy())
    assert refused.value.code == "unlimited_refused"

    limits = resolve_limits(session, LimitPolicy(allow_unlimited=True))
    host = config_for(session, LimitPolicy(allow_unlimited=True))["HostConfig"]
    assert (limits.cpu is None) == (cpu == 0)
    assert ("NanoCpus" in host) == (cpu != 0)  # type: ignore[operator]
    assert ("Memory" in host) == (memory != 0)  # type: ignore[operator]
    assert host["PidsLimit"] == 1024  # type: ignore[index]


def test_config_without_persistent_home_mounts_nothing() -> None:
    config = config_for(spec(persistent_home=False), home=None)

    assert config["HostConfig"]["Mounts"] == []  # type: ignore[index]
    assert "streamspace.home" not in config["Labels"]  # type: ignore[operator]


def test_egress_chooses_the_network_and_labels_it() -> None:
    assert session_network("ss-net", egress=True) == "ss-net"
    assert session_network("ss-net", egress=False) == "ss-net-noegress"
    on = network_config("ss-net", isolate_sessions=True, egress=True)
    off = network_config("ss-net-noegress", isolate_sessions=True, egress=False)
    assert (on["Labels"]["streamspace.egress"], off["Labels"]["streamspace.egress"]) == (
        "on",
        "off",
    )
    assert on["EnableIPv6"] is False
    assert config_for(spec(egress=False))["Labels"]["streamspace.egress"] == "off"  # type: ignore[index]


def test_chain_and_bridge_names_follow_the_network_id() -> None:
    network_id = "0123456789abcdef" * 4

    assert chain_name(network_id) == "SS-0123456789ab"
    assert len(chain_name(network_id)) <= 28  # iptables' limit
    assert bridge_name({"Id": network_id, "Options": {}}) == "br-0123456789ab"
    named = {"Id": network_id, "Options": {"com.docker.network.bridge.name": "ssbr0"}}
    assert bridge_name(named) == "ssbr0"


def rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("-A ")]


def test_seal_lets_replies_in_and_drops_the_host_first() -> None:
    for egress in (True, False):
        found = rules(seal_rules(chain="SS-x", egress=egress))
        assert found[0] == "-A SS-x -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
        assert found[1] == "-A SS-x -m addrtype --dst-type LOCAL -j DROP"


def test_seal_with_egress_drops_private_ranges_but_allowed_ones_and_passes_the_rest() -> None:
    found = rules(seal_rules(chain="SS-x", egress=True, allow=("10.9.8.7/32",)))

    allowed = found.index("-A SS-x -d 10.9.8.7/32 -j RETURN")
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"):
        assert found.index(f"-A SS-x -d {cidr} -j DROP") > allowed
    assert "169.254.0.0/16" in PRIVATE_RANGES
    assert found[-1].endswith("-j RETURN") and "-d " not in found[-1]


def test_seal_without_egress_drops_everything_else() -> None:
    found = rules(seal_rules(chain="SS-x", egress=False, allow=("10.9.8.7/32",)))

    assert found[-1] == "-A SS-x -j DROP"
    assert not any("10.9.8.7" in rule for rule in found)


def test_the_agents_vnc_secret_wins_and_is_read_back_from_inspect() -> None:
    session = spec(env={"VNC_PASSWORD": "from-template"})
    config = container_config(
        spec=session,
        agent_id="a",
        installation_id=None,
        network="n",
        home=None,
        limits=resolve_limits(session, LimitPolicy()),
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


def test_resolvers_are_the_ipv4_nameservers_off_loopback() -> None:
    text = (
        "# generated\nsearch example.internal\nnameserver 127.0.0.53\n"
        "nameserver 10.0.0.2\nnameserver fd00::1\nnameserver not-an-ip\noptions edns0\n"
        "nameserver 192.168.1.1\n"
    )
    assert resolvers(text) == ("10.0.0.2/32", "192.168.1.1/32")
    assert resolvers("nameserver 127.0.0.1\n") == ()


def test_seal_rules_let_dns_through_to_the_resolvers_only_with_egress() -> None:
    rules = seal_rules(chain="SS-x", egress=True, dns=("10.0.0.2/32",))
    lines = rules.splitlines()
    dns = [line for line in lines if "--dport 53" in line]
    assert dns == [
        "-A SS-x -d 10.0.0.2/32 -p udp --dport 53 -j RETURN",
        "-A SS-x -d 10.0.0.2/32 -p tcp --dport 53 -j RETURN",
    ]
    # before the private ranges are dropped, after the host's own addresses are
    assert lines.index(dns[0]) < lines.index("-A SS-x -d 10.0.0.0/8 -j DROP")
    assert lines.index("-A SS-x -m addrtype --dst-type LOCAL -j DROP") < lines.index(dns[0])
    assert "--dport 53" not in seal_rules(chain="SS-x", egress=False, dns=("10.0.0.2/32",))
