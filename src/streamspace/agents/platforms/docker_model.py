"""How StreamSpace sessions look in Docker: names, labels, volume names, container config, and
the mapping from Docker's container JSON back to an ObservedSession. Pure: no I/O here.

A session is one container named `ss-<session id>`, labelled with its session, user, template
and agent. A hibernated session is the same container, stopped and renamed to
`ss-<session id>.hibernated` (see `is_hibernated_name` for why the name carries that state).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from streamspace.agents.platforms.base import ObservedSession, ObservedState, SessionSpec

LABEL_SESSION = "streamspace.session"
LABEL_USER = "streamspace.user"
LABEL_TEMPLATE = "streamspace.template"
LABEL_AGENT = "streamspace.agent"
LABEL_VNC_PORT = "streamspace.vnc-port"
LABEL_HOME = "streamspace.home"
HOME_MOUNT = "/home/user"
VNC_PASSWORD = "VNC_PASSWORD"
HIBERNATED_SUFFIX = ".hibernated"
SHM_SIZE = 256 * 1024 * 1024  # browsers crash with Docker's default 64 MiB /dev/shm

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


def volume_name(*, user: str, template: str) -> str:
    """Home volume of one user and template: `streamspace-home-<user>-<template>-<hash>`.

    The short hash of the exact (user, template) pair keeps names unique after sanitising
    (`a/b` and `a_b`) and when dashes make pairs ambiguous (`a-b` + `c` versus `a` + `b-c`).
    """
    digest = hashlib.sha256(f"{user}\0{template}".encode()).hexdigest()[:8]
    return f"streamspace-home-{_safe(user)}-{_safe(template)}-{digest}"


def session_labels(*, spec: SessionSpec, agent_id: str) -> dict[str, str]:
    """Labels a session container carries; list and watch find sessions by them."""
    labels = {
        LABEL_SESSION: spec.session_id,
        LABEL_USER: spec.user,
        LABEL_TEMPLATE: spec.template,
        LABEL_AGENT: agent_id,
        LABEL_VNC_PORT: str(spec.vnc_port),
    }
    if spec.persistent_home:
        labels[LABEL_HOME] = volume_name(user=spec.user, template=spec.template)
    return labels


def volume_config(*, spec: SessionSpec, agent_id: str) -> dict[str, Any]:
    """Body of `POST /volumes/create` for the session's home volume."""
    return {
        "Name": volume_name(user=spec.user, template=spec.template),
        "Labels": {LABEL_USER: spec.user, LABEL_TEMPLATE: spec.template, LABEL_AGENT: agent_id},
    }


def container_config(
    *, spec: SessionSpec, agent_id: str, network: str, vnc_secret: str
) -> dict[str, Any]:
    """Body of `POST /containers/create`: limits, labels, home volume, network; no host ports.
    The VNC secret goes in the env (the entrypoint hands it to x11vnc and keeps it from the
    app); it is the agent's, so it wins over a template's VNC_PASSWORD."""
    host_config: dict[str, Any] = {
        "Init": True,  # tini as PID 1 reaps the zombies x11vnc would leave
        "NetworkMode": network,
        "RestartPolicy": {"Name": "no"},
        "ShmSize": SHM_SIZE,
        "SecurityOpt": ["no-new-privileges"],
        "Mounts": _mounts(spec),
    }
    if spec.cpu_limit is not None:
        host_config["NanoCpus"] = int(spec.cpu_limit * 1_000_000_000)
    if spec.memory_limit_mb is not None:
        host_config["Memory"] = spec.memory_limit_mb * 1024 * 1024
    env = {"VNC_PORT": str(spec.vnc_port), **spec.env, VNC_PASSWORD: vnc_secret}
    return {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Labels": session_labels(spec=spec, agent_id=agent_id),
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": {network: {}}},
    }


def _mounts(spec: SessionSpec) -> list[dict[str, Any]]:
    if not spec.persistent_home:
        return []
    source = volume_name(user=spec.user, template=spec.template)
    return [{"Type": "volume", "Source": source, "Target": HOME_MOUNT}]


def network_config(name: str, *, isolate_sessions: bool) -> dict[str, Any]:
    """Body of `POST /networks/create` for the sessions' own bridge network.

    With `isolate_sessions`, inter-container traffic is off: one user's session cannot reach
    another's VNC port, while the host (where the agent runs) still reaches every session.
    """
    options = {"com.docker.network.bridge.enable_icc": "false"} if isolate_sessions else {}
    return {
        "Name": name,
        "Driver": "bridge",
        "CheckDuplicate": True,
        "Options": options,
        "Labels": {"streamspace.managed": "true"},
    }


def observed_from_summary(summary: dict[str, Any], *, network: str) -> ObservedSession:
    """Map one entry of `GET /containers/json` (labels, names, state) to an ObservedSession."""
    labels: dict[str, str] = summary.get("Labels") or {}
    name = (summary.get("Names") or ["/"])[0].lstrip("/")
    state = _observed_state(docker_state=summary.get("State", ""), name=name)
    networks = (summary.get("NetworkSettings") or {}).get("Networks") or {}
    address = (networks.get(network) or {}).get("IPAddress") or None
    running = state == "running"
    return ObservedSession(
        session_id=labels.get(LABEL_SESSION, ""),
        state=state,
        vnc_host=address if running else None,
        vnc_port=int(labels.get(LABEL_VNC_PORT, "5900")) if running else None,
        detail="" if running else str(summary.get("Status", "")),
        metadata=_metadata(summary=summary, labels=labels, name=name),
    )


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
