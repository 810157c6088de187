"""How StreamSpace sessions look in Docker: names, labels, volume names, container config, and
the mapping from Docker's container JSON back to an ObservedSession. Pure: no I/O here.

A session is one container named `ss-<session id>`, labelled with its session, user, template,
agent and installation (see `owned`). A hibernated session is the same container, stopped and renamed to
`ss-<session id>.hibernated` (see `is_hibernated_name` for why the name carries that state).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Any

from streamspace.agents.platforms.base import Limits, ObservedSession, ObservedState, SessionSpec

LABEL_SESSION = "streamspace.session"
LABEL_USER = "streamspace.user"
LABEL_TEMPLATE = "streamspace.template"
LABEL_AGENT = "streamspace.agent"
LABEL_VNC_PORT = "streamspace.vnc-port"
LABEL_HOME = "streamspace.home"
LABEL_INSTALLATION = "streamspace.installation"
SHORT_INSTALLATION = 8  # hex characters of the installation id in object names
HOME_MOUNT = "/home/user"
LABEL_EGRESS = "streamspace.egress"
LABEL_MANAGED = "streamspace.managed"  # on networks an agent created (and may seal)
VNC_PASSWORD = "VNC_PASSWORD"
HIBERNATED_SUFFIX = ".hibernated"
NO_EGRESS_SUFFIX = "-noegress"
SHM_SIZE = 256 * 1024 * 1024  # browsers crash with Docker's default 64 MiB /dev/shm
# What the entrypoint needs as root before it drops to uid 1000 for good: chown a fresh home
# (CHOWN) and `setpriv --reuid --regid --init-groups` (SETUID, SETGID). Everything else goes;
# with no-new-privileges nothing can win capabilities back.
CAPABILITIES = ("CHOWN", "SETUID", "SETGID")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _safe(text: str, *, limit: int = 40) -> str:
    """Docker object names allow [A-Za-z0-9_.-] and must start with a letter or digit."""
    cleaned = _UNSAFE.sub("_", text).lstrip("_.-")[:limit]
    return cleaned or "x"


def container_name(session_id: str) -> str:
    """Name of a session's container while it runs (or failed)."""
    return f"ss-{_safe(session_id, limit=100)}"


def hibernated_name(session_id: str) -> str:
    """Name of a session's container while it is hibernated."""
    return container_name(session_id) + HIBERNATED_SUFFIX


def is_hibernated_name(name: str) -> bool:
    """Whether a container name marks a hibernated session.

    Why the name: labels cannot change after creation, and a stopped container's exit code
    does not tell `docker stop` from a crash or `docker kill` (both can end in 137 or 143).
    Renaming is atomic in the engine, survives agent restarts and moves between agent
    replicas, and shows in `docker ps -a`. `hibernate` renames *before* stopping, so the die
    event of a hibernation already sees the hibernated name, and an agent crash between the
    two steps leaves a running container that is reported as running. Waking renames back
    before starting, so a session that crashes while waking is reported as failed.
    """
    return name.lstrip("/").endswith(HIBERNATED_SUFFIX)


def volume_name(*, user: str, template: str, installation_id: str | None = None) -> str:
    """Home volume of one user and template of one installation:
    `streamspace-home-<installation>-<user>-<template>-<hash>`; without an installation id
    (a control plane from before them) the legacy `streamspace-home-<user>-<template>-<hash>`.

    The short hash of the exact (installation, user, template) keeps names unique after
    sanitising (`a/b` and `a_b`) and when dashes make pairs ambiguous (`a-b` + `c` versus
    `a` + `b-c`).
    """
    if installation_id is None:
        digest = hashlib.sha256(f"{user}\0{template}".encode()).hexdigest()[:8]
        return f"streamspace-home-{_safe(user)}-{_safe(template)}-{digest}"
    key = f"{installation_id}\0{user}\0{template}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    short = _safe(installation_id[:SHORT_INSTALLATION])
    return f"streamspace-home-{short}-{_safe(user)}-{_safe(template)}-{digest}"


def owned(labels: dict[str, str], *, agent_id: str, installation_id: str | None) -> bool:
    """Whether a container or volume is this agent's own: its agent label, and its
    installation's label or none at all. Objects from before installation ids carry none;
    they are adopted by the agent whose id they carry (an upgraded installation keeps its
    agent ids), while another installation's labelled objects are never touched."""
    if labels.get(LABEL_AGENT) != agent_id:
        return False
    theirs = labels.get(LABEL_INSTALLATION)
    return theirs is None or installation_id is None or theirs == installation_id


def object_labels(*, agent_id: str, installation_id: str | None) -> dict[str, str]:
    """The labels saying whose an object is (see `owned`)."""
    labels = {LABEL_AGENT: agent_id}
    if installation_id is not None:
        labels[LABEL_INSTALLATION] = installation_id
    return labels


def session_labels(
    *, spec: SessionSpec, agent_id: str, installation_id: str | None, home: str | None
) -> dict[str, str]:
    """Labels a session container carries; list and watch find sessions by them."""
    labels = {
        LABEL_SESSION: spec.session_id,
        LABEL_USER: spec.user,
        LABEL_TEMPLATE: spec.template,
        **object_labels(agent_id=agent_id, installation_id=installation_id),
        LABEL_VNC_PORT: str(spec.vnc_port),
        LABEL_EGRESS: "on" if spec.egress else "off",
    }
    if home is not None:
        labels[LABEL_HOME] = home
    return labels


def volume_config(*, spec: SessionSpec, name: str, owner: dict[str, str]) -> dict[str, Any]:
    """Body of `POST /volumes/create` for the session's home volume `name`; `owner` from
    `object_labels`."""
    return {
        "Name": name,
        "Labels": {LABEL_USER: spec.user, LABEL_TEMPLATE: spec.template, **owner},
    }


def container_config(
    *,
    spec: SessionSpec,
    agent_id: str,
    installation_id: str | None,
    network: str,
    home: str | None,
    limits: Limits,
    vnc_secret: str,
) -> dict[str, Any]:
    """Body of `POST /containers/create`: limits, capabilities, labels, home volume `home`
    (when the spec keeps one), network; no host ports. The VNC secret goes in the env (the
    entrypoint hands it to x11vnc and keeps it from the app); it is the agent's, so it wins
    over a template's VNC_PASSWORD."""
    host_config: dict[str, Any] = {
        "Init": True,  # tini as PID 1 reaps the zombies x11vnc would leave
        "NetworkMode": network,
        "RestartPolicy": {"Name": "no"},
        "ShmSize": SHM_SIZE,
        "SecurityOpt": ["no-new-privileges"],
        "CapDrop": ["ALL"],
        "CapAdd": list(CAPABILITIES),
        "PidsLimit": limits.pids,
        "Mounts": _mounts(home),
    }
    if limits.cpu is not None:
        host_config["NanoCpus"] = int(limits.cpu * 1_000_000_000)
    if limits.memory_mb is not None:
        host_config["Memory"] = limits.memory_mb * 1024 * 1024
    env = {"VNC_PORT": str(spec.vnc_port), **spec.env, VNC_PASSWORD: vnc_secret}
    return {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Labels": session_labels(
            spec=spec, agent_id=agent_id, installation_id=installation_id, home=home
        ),
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": {network: {}}},
    }


def _mounts(home: str | None) -> list[dict[str, Any]]:
    if home is None:
        return []
    return [{"Type": "volume", "Source": home, "Target": HOME_MOUNT}]


def network_config(name: str, *, isolate_sessions: bool, egress: bool = True) -> dict[str, Any]:
    """Body of `POST /networks/create` for the sessions' own bridge network.

    With `isolate_sessions`, inter-container traffic is off: one user's session cannot reach
    another's VNC port, while the host (where the agent runs) still reaches every session.
    IPv6 stays off: the seal (`seal_rules`) is IPv4 iptables, so no IPv6 path may exist.
    """
    options = {"com.docker.network.bridge.enable_icc": "false"} if isolate_sessions else {}
    return {
        "Name": name,
        "Driver": "bridge",
        "CheckDuplicate": True,
        "EnableIPv6": False,
        "Options": options,
        "Labels": {LABEL_MANAGED: "true", LABEL_EGRESS: "on" if egress else "off"},
    }


def session_network(base: str, *, egress: bool) -> str:
    """The network of sessions with internet egress (`base`) or without (`base`-noegress).

    Egress is a property of the network because the seal is per network: one chain of
    rules per bridge, so a session's egress is chosen by the network it joins."""
    return base if egress else f"{base}{NO_EGRESS_SUFFIX}"


# -- the seal: iptables rules of one session network (applied by docker_firewall) -----------

# Where a session must never connect, egress or not: RFC 1918, CGNAT (RFC 6598), link-local
# (cloud metadata at 169.254.169.254), loopback, "this network", IETF protocol assignments,
# benchmarking (RFC 2544, used inside some data centres), multicast and reserved/broadcast.
PRIVATE_RANGES = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
CHAIN_PREFIX = "SS-"
HOOKS = ("INPUT", "DOCKER-USER")  # traffic to the host; traffic forwarded off the bridge


def chain_name(network_id: str) -> str:
    """The chain sealing one network: `SS-<12 hex of its id>` (iptables allows 28 chars)."""
    return CHAIN_PREFIX + network_id[:12]


def bridge_name(network: dict[str, Any]) -> str:
    """The host interface of a bridge network (from `GET /networks/<id>`): its
    `com.docker.network.bridge.name` option, else Docker's `br-<12 hex of the id>`."""
    options = network.get("Options") or {}
    return str(options.get("com.docker.network.bridge.name") or "br-" + network["Id"][:12])


def jump_rule(*, hook: str, bridge: str, chain: str) -> list[str]:
    """The rule (without -A/-I/-C/-D) sending one hook's traffic from the bridge to the chain."""
    return [hook, "-i", bridge, "-m", "comment", "--comment", "streamspace seal", "-j", chain]


def seal_rules(
    *, chain: str, egress: bool, allow: tuple[str, ...] = (), dns: tuple[str, ...] = ()
) -> str:
    """`iptables-restore --noflush` text (re)writing the chain of one session network.

    The chain sees packets from the bridge both to the host (INPUT) and forwarded (DOCKER-USER):
    replies of connections the host opened pass (the agent connects to VNC ports); anything to
    an address of the host is dropped (its Redis, PostgreSQL, API); with egress, the private
    ranges are dropped except `allow` (all ports) and `dns` (port 53 only: the host's
    resolvers, which Docker's embedded DNS forwards sessions' lookups to from the session's
    own network) and the rest returns to Docker's rules; without egress everything is dropped.
    The last rule counts what passes.
    """
    rules = [
        f":{chain} - [0:0]",
        f"-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        f"-A {chain} -m addrtype --dst-type LOCAL -j DROP",
    ]
    if egress:
        rules += [f"-A {chain} -d {cidr} -j RETURN" for cidr in allow]
        rules += [
            f"-A {chain} -d {server} -p {protocol} --dport 53 -j RETURN"
            for server in dns
            for protocol in ("udp", "tcp")
        ]
        rules += [f"-A {chain} -d {cidr} -j DROP" for cidr in PRIVATE_RANGES]
        rules.append(f'-A {chain} -m comment --comment "streamspace egress" -j RETURN')
    else:
        rules.append(f"-A {chain} -j DROP")
    return "\n".join(["*filter", *rules, "COMMIT", ""])


def resolvers(resolv_conf: str) -> tuple[str, ...]:
    """The IPv4 nameservers of a resolv.conf's text that a session's lookups are forwarded to
    (loopback ones are the host's own stub resolver, never reached from a session)."""
    found = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ipaddress.ip_address(parts[1])
            except ValueError:
                continue
            if address.version == 4 and not address.is_loopback:
                found.append(f"{address}/32")
    return tuple(found)


def observed_from_summary(summary: dict[str, Any], *, network: str) -> ObservedSession:
    """Map one entry of `GET /containers/json` (labels, names, state) to an ObservedSession."""
    labels: dict[str, str] = summary.get("Labels") or {}
    name = (summary.get("Names") or ["/"])[0].lstrip("/")
    state = _observed_state(docker_state=summary.get("State", ""), name=name)
    address = session_address(summary, network=network) or None
    running = state == "running"
    return ObservedSession(
        session_id=labels.get(LABEL_SESSION, ""),
        state=state,
        vnc_host=address if running else None,
        vnc_port=int(labels.get(LABEL_VNC_PORT, "5900")) if running else None,
        detail="" if running else str(summary.get("Status", "")),
        metadata=_metadata(summary=summary, labels=labels, name=name),
        adopted=LABEL_INSTALLATION not in labels,
    )


def session_address(container: dict[str, Any], *, network: str) -> str:
    """A container's address on the sessions' network `network` or on its no-egress twin
    (`container` from a listing or an inspect); "" when it has none."""
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    for name in (network, session_network(network, egress=False)):
        if address := (networks.get(name) or {}).get("IPAddress"):
            return str(address)
    return ""


def _observed_state(*, docker_state: str, name: str) -> ObservedState:
    if docker_state == "running":
        return "running"
    if docker_state in ("created", "restarting"):
        return "starting"
    if docker_state == "removing":
        return "missing"
    return "hibernated" if is_hibernated_name(name) else "failed"


def _metadata(*, summary: dict[str, Any], labels: dict[str, str], name: str) -> dict[str, str]:
    metadata = {
        "container_id": str(summary.get("Id", "")),
        "container_name": name,
        "image": str(summary.get("Image", "")),
        "user": labels.get(LABEL_USER, ""),
        "template": labels.get(LABEL_TEMPLATE, ""),
    }
    if LABEL_HOME in labels:
        metadata["home_volume"] = labels[LABEL_HOME]
    return metadata


def vnc_secret_from_inspect(info: dict[str, Any]) -> str | None:
    """The VNC secret in a container's inspect (`Config.Env`): how any agent replica finds it
    again. None for a session created before sessions had one (its VNC has no password)."""
    for entry in (info.get("Config") or {}).get("Env") or []:
        name, _, value = str(entry).partition("=")
        if name == VNC_PASSWORD and value:
            return value
    return None


def exit_detail(state: dict[str, Any]) -> str:
    """Human words for a stopped container's `State` (from inspect)."""
    if state.get("OOMKilled"):
        return "killed: out of memory"
    code = state.get("ExitCode")
    error = state.get("Error") or ""
    text = f"exited with code {code}"
    if code == 137:
        text += " (SIGKILL)"
    return f"{text}: {error}" if error else text
