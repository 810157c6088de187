"""The seal of session networks on a Docker host: one iptables chain per network (rules from
docker_model.seal_rules), jumped to from INPUT and DOCKER-USER for traffic entering from the
network's bridge; created with the network and removed with it. Owns no Docker calls.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streamspace.agents.platforms.docker_model import (
    CHAIN_PREFIX,
    HOOKS,
    LABEL_MANAGED,
    bridge_name,
    chain_name,
    jump_rule,
    resolvers,
    seal_rules,
)
from streamspace.agents.platforms.iptables import Iptables
from streamspace.errors import PlatformError

# Docker forwards containers' lookups to the nameservers of this file, or of systemd-resolved's
# upstream list when the host's is its 127.0.0.53 stub.
HOST_RESOLV_CONFS = (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf"))


def host_resolvers() -> tuple[str, ...]:
    """The host's IPv4 nameservers that Docker forwards sessions' lookups to."""
    for path in HOST_RESOLV_CONFS:
        try:
            found = resolvers(path.read_text())
        except OSError:
            continue
        if found:
            return found
    return ()


class SessionFirewall:
    """Seals and unseals session networks. Every call is idempotent, so an agent restart or a
    second agent replica on the same host re-applies the same chain instead of adding one."""

    def __init__(
        self,
        *,
        iptables: Iptables | None = None,
        allow: Iterable[str] = (),
        dns: Iterable[str] | None = None,
    ) -> None:
        """`dns`: the resolvers sessions may reach on port 53 even on a private address;
        default: the host's (HOST_RESOLV_CONF), so name lookups work out of the box."""
        self._iptables = iptables or Iptables()
        self._allow = tuple(allow)
        self._dns = host_resolvers() if dns is None else tuple(dns)

    async def seal(self, network: dict[str, Any], *, egress: bool) -> None:
        """(Re)write the chain of `network` (from `GET /networks/<id>`) and hook it in."""
        labels = network.get("Labels") or {}
        if network.get("Driver") != "bridge" or labels.get(LABEL_MANAGED) != "true":
            raise PlatformError(
                f"network {network.get('Name')} was not created by a StreamSpace agent (driver "
                f"{network.get('Driver')}, no streamspace.managed label): sealing it would cut "
                "other containers off; point DOCKER_NETWORK at a network of its own",
                code="network_not_sealable",
            )
        if network.get("EnableIPv6"):
            raise PlatformError(
                f"network {network.get('Name')} has IPv6 enabled, which the agent cannot seal "
                "(its rules are IPv4); remove the network so the agent recreates it IPv4-only",
                code="network_not_sealable",
            )
        chain = chain_name(network["Id"])
        await self._iptables.restore(
            seal_rules(chain=chain, egress=egress, allow=self._allow, dns=self._dns)
        )
        bridge = bridge_name(network)
        for hook in HOOKS:
            rule = jump_rule(hook=hook, bridge=bridge, chain=chain)
            if (await self._iptables.run("-C", *rule)).code != 0:
                await self._iptables.check("-I", rule[0], "1", *rule[1:])

    async def unseal(self, network_id: str) -> None:
        """Remove the chain of a network (gone or going) and every jump to it."""
        chain = chain_name(network_id)
        for hook in HOOKS:
            for rule in await self._jumps(hook=hook, chain=chain):
                await self._iptables.run("-D", *rule)
        if (await self._iptables.run("-F", chain)).code == 0:
            await self._iptables.check("-X", chain)

    async def unseal_orphans(self, *, network_ids: Iterable[str], chains: list[str]) -> list[str]:
        """Remove those of `chains` whose network is not in `network_ids` (removed while no
        agent ran). List `chains` before the networks: a chain's network is created first, so
        a chain listed then has its network in a later listing unless it is really gone."""
        alive = {chain_name(network_id) for network_id in network_ids}
        orphans = [chain for chain in chains if chain not in alive]
        for chain in orphans:
            await self.unseal(chain.removeprefix(CHAIN_PREFIX))
        return orphans

    async def chains(self) -> list[str]:
        """Every session-network chain in the filter table."""
        listing = await self._iptables.run("-S")
        if listing.code != 0:
            raise PlatformError(f"iptables -S failed: {listing.err}", code="network_sealing_failed")
        return [
            line.split()[1]
            for line in listing.out.splitlines()
            if line.startswith(f"-N {CHAIN_PREFIX}")
        ]

    async def _jumps(self, *, hook: str, chain: str) -> list[list[str]]:
        listing = await self._iptables.run("-S", hook)
        found = []
        for line in listing.out.splitlines():
            words = shlex.split(line)
            if words[:1] == ["-A"] and words[-2:] == ["-j", chain]:
                found.append(words[1:])
        return found
