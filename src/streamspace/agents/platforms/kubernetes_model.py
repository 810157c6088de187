"""How StreamSpace sessions look in Kubernetes: names, labels, the Pod, the home claim, the
session record, the NetworkPolicy, and the mapping from a Pod's status back to an
ObservedSession. Pure: no I/O here; the manifests are plain JSON-shaped dicts.

A session is a Pod `ss-<session id>` plus a ConfigMap of the same name, its record: the spec
it was started with and whether it is hibernated. Hibernating deletes the Pod and keeps the
record and the home claim (one PersistentVolumeClaim per user and template); waking creates
the Pod again from the record. The session's VNC secret is a Secret of that name too, which
the Pod's env references (the agent reads it back through that reference); it goes with the
record.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any, Literal

from streamspace.agents.platforms.base import Limits, ObservedSession, ObservedState, SessionSpec
from streamspace.agents.platforms.docker_model import PRIVATE_RANGES

PREFIX = "streamspace.io/"
LABEL_SESSION = PREFIX + "session"
LABEL_AGENT = PREFIX + "agent"
LABEL_USER = PREFIX + "user"
LABEL_TEMPLATE = PREFIX + "template"
LABEL_INSTALLATION = PREFIX + "installation"
LABEL_EGRESS = PREFIX + "egress"
COMPONENT = "app.kubernetes.io/component"
ANNOTATION_SESSION = PREFIX + "session"
ANNOTATION_USER = PREFIX + "user"
ANNOTATION_TEMPLATE = PREFIX + "template"
ANNOTATION_VNC_PORT = PREFIX + "vnc-port"
ANNOTATION_HOME = PREFIX + "home"
HOME_MOUNT = "/home/user"
VNC_PASSWORD = "VNC_PASSWORD"
SECRET_KEY = "vnc-password"
SESSION_UID = 1000  # the session images' `user`
SHM_LIMIT = "256Mi"  # browsers crash with a small /dev/shm
PULL_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
RecordState = Literal["running", "hibernated"]

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]+")


def label_value(text: str) -> str:
    """A valid label value (at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends); the
    exact text goes in an annotation beside it."""
    cleaned = _LABEL_UNSAFE.sub("_", text)[:63].strip("_.-")
    return cleaned or "x"


def _name_part(text: str, *, limit: int) -> str:
    return _NAME_UNSAFE.sub("-", text.lower()).strip("-")[:limit].strip("-") or "x"


def pod_name(session_id: str) -> str:
    """Name of a session's Pod and of its record (ConfigMap)."""
    return f"ss-{_name_part(session_id, limit=60)}"


def claim_name(*, user: str, template: str) -> str:
    """Home claim of one user and template: `home-<user>-<template>-<hash>`; the hash of the
    exact pair keeps names unique after cleaning (see docker_model.volume_name)."""
    digest = hashlib.sha256(f"{user}\0{template}".encode()).hexdigest()[:8]
    return f"home-{_name_part(user, limit=24)}-{_name_part(template, limit=24)}-{digest}"


def policy_name(agent_id: str) -> str:
    """The NetworkPolicy that seals this agent's session pods."""
    return f"streamspace-sessions-{agent_id}"[:253]


def egress_policy_name(agent_id: str) -> str:
    """The NetworkPolicy that lets this agent's sessions with egress reach the internet."""
    return f"streamspace-sessions-{agent_id}"[:246] + "-egress"


def session_selector(agent_id: str) -> str:
    """Label selector of every session Pod (or record) this agent owns."""
    return f"{LABEL_AGENT}={label_value(agent_id)},{COMPONENT}=session"


def record_selector(agent_id: str) -> str:
    return f"{LABEL_AGENT}={label_value(agent_id)},{COMPONENT}=session-record"


def owned(obj: dict[str, Any], *, installation_id: str | None) -> bool:
    """Whether an object the agent's label selected is its own installation's: labelled with
    it, or unlabelled (made before installation ids; see docker_model.owned)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    theirs = labels.get(LABEL_INSTALLATION)
    return theirs is None or installation_id is None or theirs == installation_id


def _labels(
    *, spec: SessionSpec, agent_id: str, component: str, installation_id: str | None
) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "streamspace-session",
        "app.kubernetes.io/part-of": "streamspace",
        "app.kubernetes.io/managed-by": "streamspace-agent",
        COMPONENT: component,
        LABEL_SESSION: label_value(spec.session_id),
        LABEL_AGENT: label_value(agent_id),
        LABEL_USER: label_value(spec.user),
        LABEL_TEMPLATE: label_value(spec.template),
    }
    if installation_id is not None:
        labels[LABEL_INSTALLATION] = label_value(installation_id)
    return labels


def _pod_labels(*, spec: SessionSpec, agent_id: str, installation_id: str | None) -> dict[str, str]:
    labels = _labels(
        spec=spec, agent_id=agent_id, component="session", installation_id=installation_id
    )
    labels[LABEL_EGRESS] = "on" if spec.egress else "off"  # the egress policy selects on it
    return labels


def _annotations(spec: SessionSpec) -> dict[str, str]:
    annotations = {
        ANNOTATION_SESSION: spec.session_id,
        ANNOTATION_USER: spec.user,
        ANNOTATION_TEMPLATE: spec.template,
        ANNOTATION_VNC_PORT: str(spec.vnc_port),
    }
    if spec.persistent_home:
        annotations[ANNOTATION_HOME] = claim_name(user=spec.user, template=spec.template)
    return annotations


def _quantities(limits: Limits) -> dict[str, str]:
    amounts: dict[str, str] = {}
    if limits.cpu is not None:
        amounts["cpu"] = f"{max(1, round(limits.cpu * 1000))}m"
    if limits.memory_mb is not None:
        amounts["memory"] = f"{limits.memory_mb}Mi"
    return amounts


def pull_policy(pull: str | None) -> str:
    """The template's `pull` as a Kubernetes imagePullPolicy (default IfNotPresent)."""
    return {"never": "Never", "always": "Always"}.get(pull or "", "IfNotPresent")


def pod_manifest(
    *,
    spec: SessionSpec,
    agent_id: str,
    pull_policy: str,
    stop_timeout: int,
    limits: Limits,
    installation_id: str | None = None,
    secret_name: str | None = None,
) -> dict[str, Any]:
    """The session Pod: non-root, no privilege escalation, no capabilities, RuntimeDefault
    seccomp, limits (and equal requests) from the template or the agent's defaults, the home
    claim, no host ports. No PIDs limit: Kubernetes sets it per node (kubelet podPidsLimit)."""
    container: dict[str, Any] = {
        "name": "session",
        "image": spec.image,
        "imagePullPolicy": pull_policy,
        "env": _env(spec, secret_name=secret_name or pod_name(spec.session_id)),
        "ports": [{"name": "vnc", "containerPort": spec.vnc_port, "protocol": "TCP"}],
        "readinessProbe": {
            "tcpSocket": {"port": "vnc"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
    }
    if quantities := _quantities(limits):
        container["resources"] = {"limits": quantities, "requests": dict(quantities)}
    volumes: list[dict[str, Any]] = [
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_LIMIT}}
    ]
    if spec.persistent_home:
        claim = claim_name(user=spec.user, template=spec.template)
        volumes.append({"name": "home", "persistentVolumeClaim": {"claimName": claim}})
        container["volumeMounts"].append({"name": "home", "mountPath": HOME_MOUNT})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(spec.session_id),
            "labels": _pod_labels(spec=spec, agent_id=agent_id, installation_id=installation_id),
            "annotations": _annotations(spec),
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": stop_timeout,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": SESSION_UID,
                "runAsGroup": SESSION_UID,
                "fsGroup": SESSION_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": volumes,
        },
    }


def _env(spec: SessionSpec, *, secret_name: str) -> list[dict[str, Any]]:
    """The template's env and VNC_PORT; VNC_PASSWORD from the session's Secret (the agent's
    wins over a template's: it is the only password the agent can answer)."""
    values = {"VNC_PORT": str(spec.vnc_port), **spec.env}
    values.pop(VNC_PASSWORD, None)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in values.items()]
    reference = {"name": secret_name, "key": SECRET_KEY}
    return [*env, {"name": VNC_PASSWORD, "valueFrom": {"secretKeyRef": reference}}]


def seeded_secret_name(session_id: str, *, seed: str) -> str:
    """The Secret of a session whose VNC password is derived from `seed`: named after the
    seed's fingerprint too, so a session woken after the seed changed gets a new Secret (the
    agent cannot replace one) with the password the agent now derives."""
    fingerprint = hashlib.sha256(f"streamspace-vnc-seed:{seed}".encode()).hexdigest()[:8]
    return f"{pod_name(session_id)}-{fingerprint}"


def secret_manifest(
    *,
    spec: SessionSpec,
    agent_id: str,
    secret: str,
    installation_id: str | None = None,
    owner: dict[str, Any] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The session's VNC secret, readable only by whoever may read Secrets in the namespace;
    the Pod gets it through its env, never through the agent's reports. `owner`: the
    session's record ConfigMap, whose deletion takes the Secret with it (garbage collection)."""
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name or pod_name(spec.session_id),
            "labels": _labels(
                spec=spec,
                agent_id=agent_id,
                component="session-secret",
                installation_id=installation_id,
            ),
            "annotations": {ANNOTATION_SESSION: spec.session_id},
        },
        "data": {SECRET_KEY: base64.b64encode(secret.encode()).decode()},
    }
    if owner is not None:
        meta = owner["metadata"]
        manifest["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": meta["name"], "uid": meta["uid"]}
        ]
    return manifest


def secret_reference(pod: dict[str, Any]) -> tuple[str, str] | None:
    """(Secret name, key) the Pod's VNC_PASSWORD comes from; None for a Pod created before
    sessions had secrets (its VNC has no password)."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for entry in container.get("env") or []:
            if entry.get("name") != VNC_PASSWORD:
                continue
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name") and ref.get("key"):
                return str(ref["name"]), str(ref["key"])
    return None


def secret_value(secret: dict[str, Any], *, key: str) -> str | None:
    """One key of a Secret as read from the API (base64 `data`)."""
    encoded = (secret.get("data") or {}).get(key)
    return base64.b64decode(encoded).decode() if encoded else None


def claim_manifest(
    *,
    spec: SessionSpec,
    agent_id: str,
    size: str,
    storage_class: str | None,
    installation_id: str | None = None,
) -> dict[str, Any]:
    """The user's home for this template, kept across sessions and hibernation."""
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        claim["storageClassName"] = storage_class
    labels = _labels(
        spec=spec, agent_id=agent_id, component="home", installation_id=installation_id
    )
    labels.pop(LABEL_SESSION)
    annotations = {ANNOTATION_USER: spec.user, ANNOTATION_TEMPLATE: spec.template}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim_name(user=spec.user, template=spec.template),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": claim,
    }


def record_manifest(
    *,
    spec: SessionSpec,
    agent_id: str,
    state: RecordState,
    installation_id: str | None = None,
) -> dict[str, Any]:
    """The session's record: the spec it runs with and whether it is hibernated."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": pod_name(spec.session_id),
            "labels": _labels(
                spec=spec,
                agent_id=agent_id,
                component="session-record",
                installation_id=installation_id,
            ),
            "annotations": _annotations(spec),
        },
        "data": {"spec": json.dumps(spec_to_dict(spec), sort_keys=True), "state": state},
    }


def spec_to_dict(spec: SessionSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in SessionSpec.__dataclass_fields__}


def spec_from_record(record: dict[str, Any]) -> SessionSpec:
    data = json.loads((record.get("data") or {}).get("spec") or "{}")
    return SessionSpec(**{k: v for k, v in data.items() if k in SessionSpec.__dataclass_fields__})


def record_state(record: dict[str, Any] | None) -> RecordState | None:
    if record is None:
        return None
    return "hibernated" if (record.get("data") or {}).get("state") == "hibernated" else "running"


def _policy_metadata(*, name: str, agent_id: str) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {
            "app.kubernetes.io/part-of": "streamspace",
            "app.kubernetes.io/managed-by": "streamspace-agent",
            LABEL_AGENT: label_value(agent_id),
        },
    }


def policy_manifest(*, agent_id: str, agent_pod_labels: dict[str, str]) -> dict[str, Any]:
    """Only this agent's own pods reach the sessions, and only on their VNC port; the sessions
    reach nothing (the egress policy opens the internet to those with egress on)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _policy_metadata(name=policy_name(agent_id), agent_id=agent_id),
        "spec": {
            "podSelector": {
                "matchLabels": {LABEL_AGENT: label_value(agent_id), COMPONENT: "session"}
            },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": agent_pod_labels}}],
                    "ports": [{"protocol": "TCP", "port": "vnc"}],
                }
            ],
            "egress": [],
        },
    }


def egress_policy_manifest(*, agent_id: str) -> dict[str, Any]:
    """Sessions with egress on reach the internet but no private range (the cluster's nodes,
    pods and services, cloud metadata), and the cluster DNS (pods labelled k8s-app=kube-dns,
    the label both kube-dns and CoreDNS carry) on port 53."""
    dns = [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _policy_metadata(name=egress_policy_name(agent_id), agent_id=agent_id),
        "spec": {
            "podSelector": {
                "matchLabels": {
                    LABEL_AGENT: label_value(agent_id),
                    COMPONENT: "session",
                    LABEL_EGRESS: "on",
                }
            },
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}]},
                {
                    "to": [
                        {
                            "namespaceSelector": {},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": dns,
                },
            ],
        },
    }


def parse_labels(text: str) -> dict[str, str]:
    """`k=v,k=v` (AGENT_POD_LABELS) as a dict."""
    return dict(pair.split("=", 1) for pair in text.split(",") if pair)


# -- reading a Pod back ----------------------------------------------------------------------


def observe_pod(pod: dict[str, Any], *, record: RecordState | None) -> ObservedSession:
    """What a session Pod's status means for the session, in words a user can act on."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    session_id = annotations.get(ANNOTATION_SESSION) or (metadata.get("labels") or {}).get(
        LABEL_SESSION, ""
    )
    state, detail = pod_state(pod, record=record)
    status = pod.get("status") or {}
    running = state == "running"
    return ObservedSession(
        session_id=session_id,
        state=state,
        vnc_host=status.get("podIP") if running else None,
        vnc_port=int(annotations.get(ANNOTATION_VNC_PORT, "5900")) if running else None,
        detail=detail,
        metadata=_metadata(pod),
    )


def running_address(pod: dict[str, Any]) -> tuple[str, int] | None:
    """(pod IP, VNC port) while the pod's container runs and it is not being deleted."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or status.get("phase") != "Running":
        return None
    if not status.get("podIP"):
        return None
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return str(status["podIP"]), int(annotations.get(ANNOTATION_VNC_PORT, "5900"))


def pod_state(pod: dict[str, Any], *, record: RecordState | None) -> tuple[ObservedState, str]:
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return _terminating(status, record=record)
    phase = status.get("phase") or "Pending"
    if status.get("reason") == "NodeLost" or _condition(status, "Ready", reason="NodeLost"):
        return "failed", f"node lost: {status.get('message') or _ready_message(status)}"
    if phase == "Unknown":
        return "failed", "node lost: the pod's node stopped reporting its state"
    if phase == "Failed":
        return "failed", _failure(status)
    if phase == "Succeeded":
        return "failed", "the session's desktop exited (code 0)"
    if phase == "Running":
        ready = all(c.get("ready") for c in status.get("containerStatuses") or [{}])
        return ("running", "") if ready else ("starting", "waiting for the VNC server")
    return _pending(pod)


def _terminating(
    status: dict[str, Any], *, record: RecordState | None
) -> tuple[ObservedState, str]:
    if record == "hibernated":
        return "hibernated", ""
    disruption = _condition(status, "DisruptionTarget")
    if disruption is not None:
        return "failed", f"evicted: {disruption.get('message') or disruption.get('reason')}"
    return "missing", "pod is being deleted"


def _pending(pod: dict[str, Any]) -> tuple[ObservedState, str]:
    status = pod.get("status") or {}
    image = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("image", "")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason", ""), waiting.get("message", "")
        if reason in PULL_ERRORS:
            return "failed", (
                f"image {image} cannot be pulled ({reason}: {message or 'no details'}); "
                "check the template's image name and the cluster's registry access"
            )
        if reason in CONFIG_ERRORS:
            return "failed", f"the session container cannot be created ({reason}: {message})"
    scheduled = _condition(status, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        return "starting", f"pending: {scheduled.get('reason')}: {scheduled.get('message', '')}"
    return "starting", "pending"


def _failure(status: dict[str, Any]) -> str:
    if status.get("reason") == "Evicted":
        return f"evicted: {status.get('message') or 'the node ran short of resources'}"
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("reason") == "OOMKilled":
            return "killed: out of memory (the template's memory limit was reached)"
        if terminated:
            code = terminated.get("exitCode")
            why = terminated.get("message") or terminated.get("reason") or ""
            return f"exited with code {code}" + (f": {why}" if why else "")
    return f"failed: {status.get('reason') or ''} {status.get('message') or ''}".strip()


def _condition(
    status: dict[str, Any], kind: str, *, reason: str | None = None
) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") != kind:
            continue
        if reason is None or condition.get("reason") == reason:
            found: dict[str, Any] = condition
            return found
    return None


def _ready_message(status: dict[str, Any]) -> str:
    ready = _condition(status, "Ready") or {}
    return str(ready.get("message") or "its node is unresponsive")


def _metadata(pod: dict[str, Any]) -> dict[str, str]:
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    found = {
        "pod_name": str(metadata.get("name", "")),
        "node": str((pod.get("spec") or {}).get("nodeName") or ""),
        "image": str(((pod.get("spec") or {}).get("containers") or [{}])[0].get("image", "")),
        "user": str(annotations.get(ANNOTATION_USER, "")),
        "template": str(annotations.get(ANNOTATION_TEMPLATE, "")),
    }
    if ANNOTATION_HOME in annotations:
        found["home_claim"] = str(annotations[ANNOTATION_HOME])
    return found
