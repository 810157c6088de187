"""Sealed session networks and container limits on the real Docker engine and host iptables:
from inside a running session, the host's listeners and private addresses are out of reach;
with egress on, a public destination passes our chain; with egress off nothing leaves; the
agent still reaches VNC; the chain goes with the network; limits and capabilities hold.

Each test has its own agent id and networks and removes its containers, networks and chains.
"No internet here": for a public destination the test reads the chain's packet counters (the
packet was let through by our rules and left towards the default route), not a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamspace.agents.platforms.base import LimitPolicy, SessionSpec
from streamspace.agents.platforms.docker import DockerPlatform
from streamspace.agents.platforms.docker_firewall import SessionFirewall, host_resolvers
from streamspace.agents.platforms.docker_model import chain_name, container_name, session_network
from streamspace.agents.platforms.iptables import Iptables
from streamspace.errors import PlatformError
from tests.support.docker import IMAGE, docker_cli

pytestmark = pytest.mark.docker

USER = f"seal-{uuid.uuid4().hex[:8]}"
PUBLIC = "1.1.1.1"  # outside every private range; there is no route beyond the host here
PRIVATE = "10.255.255.53"  # a private address the host itself can use (its DNS resolver)


@pytest.fixture
async def platform(agent_names: tuple[str, str]) -> AsyncIterator[DockerPlatform]:
    agent_id, network = agent_names
    docker = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20)
    try:
        yield docker
    finally:
        await docker.close()


@pytest.fixture
async def host_listener() -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP listener on every host address (like Redis or the API bound to 0.0.0.0); the
    list records the peers that reached it."""
    peers: list[str] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(accept, "0.0.0.0", 0, family=socket.AF_INET)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, peers
    finally:
        server.close()
        await server.wait_closed()


def make_spec(**overrides: Any) -> SessionSpec:
    fields: dict[str, Any] = {
        "session_id": uuid.uuid4().hex[:12],
        "user": USER,
        "template": "terminal",
        "image": IMAGE,
        "persistent_home": False,
    }
    fields.update(overrides)
    return SessionSpec(**fields)


async def connects(container: str, host: str, port: int) -> bool:
    """Whether a TCP connection from inside the container to host:port opens within 3 s."""
    proc = await asyncio.create_subprocess_exec(
        "docker",
        "exec",
        container,
        "timeout",
        "3",
        "bash",
        "-c",
        f"exec 3<>/dev/tcp/{host}/{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await proc.wait() == 0


async def network_info(name: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(await docker_cli("network", "inspect", name))[0]
    return info


async def gateway(name: str) -> str:
    return str((await network_info(name))["IPAM"]["Config"][0]["Gateway"])


async def iptables(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "iptables", "-w", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def counters(chain: str) -> dict[str, int]:
    """Packets each rule of the chain has matched, keyed by the rule's text without counters."""
    found = {}
    for line in (await iptables("-v", "-S", chain)).splitlines():
        match = re.match(r"(-A \S+)(.*?) -c (\d+) \d+(.*)", line)
        if match:
            found[(match[1] + match[2] + match[4]).strip()] = int(match[3])
    return found


async def host_address() -> str:
    """The host's own address on its uplink (not on any Docker bridge)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((PUBLIC, 53))
        return str(probe.getsockname()[0])
    finally:
        probe.close()


async def test_a_session_reaches_neither_the_host_nor_private_addresses(
    platform: DockerPlatform, agent_names: tuple[str, str], host_listener: tuple[int, list[str]]
) -> None:
    port, peers = host_listener
    spec = make_spec()
    observed = await platform.start(spec)  # returns once the agent read VNC's banner
    name = container_name(spec.session_id)
    network = agent_names[1]
    chain = chain_name((await network_info(network))["Id"])
    before = await counters(chain)

    assert observed.state == "running"
    assert await connects(name, "127.0.0.1", 5900)  # the probe itself works
    assert not await connects(name, await gateway(network), port)
    assert not await connects(name, await host_address(), port)
    assert peers == []
    assert not await connects(name, PRIVATE, 80)
    after = await counters(chain)
    assert after[f"-A {chain} -d 10.0.0.0/8 -j DROP"] > before[f"-A {chain} -d 10.0.0.0/8 -j DROP"]
    assert after[f"-A {chain} -m addrtype --dst-type LOCAL -j DROP"] > 0


async def test_the_hosts_resolvers_answer_lookups_on_port_53_only(
    platform: DockerPlatform, agent_names: tuple[str, str]
) -> None:
    """Docker forwards a session's lookups to the host's nameservers from the session's own
    network; on a private address (most clouds' resolvers) the seal lets port 53 through to
    them, and nothing else."""
    servers = host_resolvers()
    if not servers:
        pytest.skip("this host has no IPv4 nameserver off loopback")
    resolver = servers[0].removesuffix("/32")
    spec = make_spec()
    await platform.start(spec)
    name = container_name(spec.session_id)
    chain = chain_name((await network_info(agent_names[1]))["Id"])
    dns = f"-A {chain} -d {resolver}/32 -p tcp -m tcp --dport 53 -j RETURN"
    before = await counters(chain)

    await connects(name, resolver, 53)
    await connects(name, resolver, 80)

    after = await counters(chain)
    assert after[dns] > before[dns]
    drops = [rule for rule in after if rule.endswith("-j DROP") and resolver_range(rule, resolver)]
    assert sum(after[rule] - before[rule] for rule in drops) > 0  # port 80 was dropped


def resolver_range(rule: str, address: str) -> bool:
    """Whether a `-d <cidr> -j DROP` rule covers `address`."""
    match = re.search(r"-d (\S+) -j DROP", rule)
    return bool(match) and ipaddress.ip_address(address) in ipaddress.ip_network(match[1])


async def test_the_same_probe_reaches_the_host_without_the_seal(
    agent_names: tuple[str, str], host_listener: tuple[int, list[str]]
) -> None:
    """The control: with SESSION_NETWORK_SEALING=false the probe above does connect, so the
    failures there come from the seal, not from the probe or the network."""
    agent_id, network = agent_names
    port, peers = host_listener
    open_platform = DockerPlatform(
        agent_id=agent_id, network=network, ready_timeout=20, seal_networks=False
    )
    try:
        spec = make_spec()
        await open_platform.start(spec)
        assert await connects(container_name(spec.session_id), await gateway(network), port)
        assert peers
    finally:
        await open_platform.close()


async def test_egress_on_lets_a_public_destination_through_our_chain(
    platform: DockerPlatform, agent_names: tuple[str, str]
) -> None:
    spec = make_spec()
    await platform.start(spec)
    chain = chain_name((await network_info(agent_names[1]))["Id"])
    passed = f'-A {chain} -m comment --comment "streamspace egress" -j RETURN'
    before = await counters(chain)

    await connects(container_name(spec.session_id), PUBLIC, 443)  # no reply: no internet here

    after = await counters(chain)
    assert after[passed] > before[passed]
    drops = [rule for rule in after if rule.endswith("-j DROP")]
    assert [after[rule] - before[rule] for rule in drops] == [0] * len(drops)


async def test_egress_off_lets_nothing_leave_and_vnc_still_works(
    platform: DockerPlatform, agent_names: tuple[str, str], host_listener: tuple[int, list[str]]
) -> None:
    port, peers = host_listener
    spec = make_spec(egress=False)
    observed = await platform.start(spec)
    name = container_name(spec.session_id)
    network = session_network(agent_names[1], egress=False)
    chain = chain_name((await network_info(network))["Id"])
    before = await counters(chain)

    assert observed.vnc_host is not None
    reader, writer = await asyncio.open_connection(observed.vnc_host, observed.vnc_port)
    assert (await asyncio.wait_for(reader.readexactly(4), 5)) == b"RFB "
    writer.close()
    assert not await connects(name, PUBLIC, 443)
    assert not await connects(name, await gateway(network), port)
    assert peers == []
    after = await counters(chain)
    assert after[f"-A {chain} -j DROP"] > before[f"-A {chain} -j DROP"]
    inspect = json.loads(await docker_cli("inspect", name))[0]
    assert list(inspect["NetworkSettings"]["Networks"]) == [network]


async def test_sealing_twice_adds_nothing_and_the_chain_goes_with_the_network(
    platform: DockerPlatform, agent_names: tuple[str, str]
) -> None:
    agent_id, network = agent_names
    spec = make_spec()
    await platform.start(spec)
    chain = chain_name((await network_info(network))["Id"])
    rules = await iptables("-S", chain)
    replica = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20)
    try:
        await replica.start(spec)  # a restarted agent or a second replica seals again
    finally:
        await replica.close()

    assert await iptables("-S", chain) == rules
    for hook in ("INPUT", "DOCKER-USER"):
        assert (await iptables("-S", hook)).count(f"-j {chain}") == 1

    await platform.stop(spec.session_id)
    await platform.remove_networks()
    assert chain not in await iptables("-S")
    for hook in ("INPUT", "DOCKER-USER"):
        assert chain not in await iptables("-S", hook)


async def test_a_chain_left_by_a_network_removed_behind_the_agents_back_goes_at_start(
    agent_names: tuple[str, str],
) -> None:
    agent_id, network = agent_names
    first = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20)
    spec = make_spec()
    try:
        await first.start(spec)
        await first.stop(spec.session_id)
    finally:
        await first.close()
    chain = chain_name((await network_info(network))["Id"])
    await docker_cli("network", "rm", network)
    assert chain in await iptables("-S")

    second = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20)
    try:
        await second.start(make_spec())
    finally:
        await second.close()
    assert chain not in await iptables("-S")


async def test_limits_and_capabilities_hold_in_the_running_container(
    agent_names: tuple[str, str],
) -> None:
    agent_id, network = agent_names
    policy = LimitPolicy(cpu=0.75, memory_mb=384, pids=321)
    docker = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20, limits=policy)
    try:
        spec = make_spec(persistent_home=True)
        await docker.start(spec)
        name = container_name(spec.session_id)
        host = json.loads(await docker_cli("inspect", name))[0]["HostConfig"]
        status = await docker_cli("exec", name, "cat", "/proc/1/status")
    finally:
        await docker.close()

    assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (
        750_000_000,
        384 * 1024 * 1024,
        321,
    )
    assert host["CapDrop"] == ["ALL"] and sorted(host["CapAdd"]) == ["CHOWN", "SETGID", "SETUID"]
    bounding = int(re.search(r"CapBnd:\s*([0-9a-f]+)", status)[1], 16)  # type: ignore[index]
    assert bounding == (1 << 0) | (1 << 6) | (1 << 7)  # CAP_CHOWN, CAP_SETGID, CAP_SETUID


async def test_unlimited_is_refused_before_anything_is_created(
    platform: DockerPlatform, agent_names: tuple[str, str]
) -> None:
    spec = make_spec(cpu_limit=0)

    with pytest.raises(PlatformError, match="unlimited CPU") as refused:
        await platform.start(spec)

    assert refused.value.code == "unlimited_refused"
    assert await platform.list_sessions() == []
    with contextlib.suppress(AssertionError):
        await docker_cli("network", "inspect", agent_names[1])
        pytest.fail("the network was created for a session that was refused")


async def test_unlimited_runs_where_the_agent_allows_it(agent_names: tuple[str, str]) -> None:
    agent_id, network = agent_names
    policy = LimitPolicy(allow_unlimited=True)
    docker = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20, limits=policy)
    try:
        spec = make_spec(cpu_limit=0, memory_limit_mb=0)
        await docker.start(spec)
        host = json.loads(await docker_cli("inspect", container_name(spec.session_id)))[0]
    finally:
        await docker.close()

    assert (host["HostConfig"]["NanoCpus"], host["HostConfig"]["Memory"]) == (0, 0)
    assert host["HostConfig"]["PidsLimit"] == 1024


async def test_without_iptables_a_start_fails_with_the_reason(
    agent_names: tuple[str, str],
) -> None:
    """An agent that cannot run iptables (not root, rootless Docker; here: the tools missing)
    starts no unsealed session: the start fails and says what to do."""
    agent_id, network = agent_names
    missing = Iptables(binary="/nonexistent/iptables", restore_binary="/nonexistent/restore")
    docker = DockerPlatform(
        agent_id=agent_id,
        network=network,
        ready_timeout=20,
        firewall=SessionFirewall(iptables=missing),
    )
    try:
        with pytest.raises(PlatformError, match="SESSION_NETWORK_SEALING") as refused:
            await docker.start(make_spec())
        assert refused.value.code == "network_sealing_unavailable"
        assert await docker.list_sessions() == []
    finally:
        await docker.close()


async def test_a_network_the_agent_did_not_create_is_not_sealed(
    agent_names: tuple[str, str],
) -> None:
    """DOCKER_NETWORK pointing at someone else's network (say Docker's default bridge): the
    agent's rules would cut that network's other containers off, so it refuses."""
    agent_id, network = agent_names
    await docker_cli("network", "create", network)
    docker = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20)
    try:
        with pytest.raises(PlatformError, match="not created by a StreamSpace agent") as refused:
            await docker.start(make_spec())
        assert refused.value.code == "network_not_sealable"
        chain = chain_name((await network_info(network))["Id"])
        assert chain not in await iptables("-S")
    finally:
        await docker.close()


async def test_sessions_running_before_the_agent_are_sealed_when_it_lists_them(
    agent_names: tuple[str, str], host_listener: tuple[int, list[str]]
) -> None:
    """An upgrade in place: sessions started by an agent that did not seal keep running; the
    new agent seals their network as soon as it lists its sessions (it does on connect)."""
    agent_id, network = agent_names
    port, peers = host_listener
    old = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20, seal_networks=False)
    spec = make_spec()
    try:
        await old.start(spec)
    finally:
        await old.close()
    name = container_name(spec.session_id)
    chain = chain_name((await network_info(network))["Id"])
    assert chain not in await iptables("-S")

    new = DockerPlatform(agent_id=agent_id, network=network, ready_timeout=20)
    try:
        assert [s.state for s in await new.list_sessions()] == ["running"]
    finally:
        await new.close()
    assert chain in await iptables("-S")
    assert not await connects(name, await gateway(network), port)
    assert peers == []
