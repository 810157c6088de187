"""The Kubernetes agent's objects are valid for the API server, locked down, and its reading
of pod status gives the user words to act on."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from streamspace.agents.platforms import kubernetes_model as model
from streamspace.agents.platforms.base import LimitPolicy, SessionSpec, resolve_limits

SPEC = SessionSpec(
    session_id="4f0c2a9e8b7d4c1e9a3b5d7f1e2c4a6b",
    user="alice@example.com",
    template="Firefox Browser",
    image="streamspace/browser:bookworm",
    cpu_limit=1.5,
    memory_limit_mb=2048,
    env={"SESSION_APP": "firefox-esr"},
)
KUBE_VERSIONS = ["1.29", "1.32"]

INSTALLATION = "0123456789abcdef0123456789abcdef"


def pod_of(spec: SessionSpec, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "agent_id": "k8s-a",
        "pull_policy": "IfNotPresent",
        "stop_timeout": 5,
    }
    fields.update(overrides)
    if "limits" not in fields:
        fields["limits"] = resolve_limits(spec, LimitPolicy())
    return model.pod_manifest(spec=spec, **fields)


def objects() -> list[dict[str, Any]]:
    return [
        pod_of(
            SPEC, agent_id="k8s-prod-us-east-1", pull_policy="Never", installation_id=INSTALLATION
        ),
        model.claim_manifest(
            spec=SPEC,
            agent_id="k8s-prod-us-east-1",
            size="5Gi",
            storage_class="fast",
            installation_id=INSTALLATION,
        ),
        model.record_manifest(
            spec=SPEC, agent_id="k8s-prod-us-east-1", state="running", installation_id=INSTALLATION
        ),
        model.secret_manifest(spec=SPEC, agent_id="k8s-prod-us-east-1", secret="s3cr3t!x"),
        model.policy_manifest(
            agent_id="k8s-prod-us-east-1",
            agent_pod_labels=model.parse_labels(
                "app.kubernetes.io/component=k8s-agent,app.kubernetes.io/instance=streamspace"
            ),
        ),
        model.egress_policy_manifest(agent_id="k8s-prod-us-east-1"),
    ]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_object_the_agent_creates_validates_strictly(version: str) -> None:
    for manifest in objects():
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_session_pod_is_locked_down_and_labelled() -> None:
    pod = pod_of(SPEC)
    labels = pod["metadata"]["labels"]
    assert labels["streamspace.io/session"] == SPEC.session_id
    assert labels["streamspace.io/agent"] == "k8s-a"
    assert labels["streamspace.io/user"] == "alice_example.com"  # label-safe; exact in annotation
    assert pod["metadata"]["annotations"]["streamspace.io/user"] == "alice@example.com"
    assert labels["streamspace.io/template"] == "Firefox_Browser"
    assert labels["app.kubernetes.io/part-of"] == "streamspace"
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] and security["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["spec"]["containers"][0]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["limits"] == {"cpu": "1500m", "memory": "2048Mi"}
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert "hostPort" not in container["ports"][0]
    assert pod["spec"]["automountServiceAccountToken"] is False
    claim = model.claim_name(user="alice@example.com", template="Firefox Browser")
    assert {"name": "home", "persistentVolumeClaim": {"claimName": claim}} in pod["spec"]["volumes"]


def test_the_pod_takes_its_vnc_password_from_the_sessions_secret_and_the_agent_reads_it() -> None:
    spec = SessionSpec(
        session_id="s1", user="u", template="t", image="i", env={"VNC_PASSWORD": "template's"}
    )
    pod = pod_of(spec, agent_id="a", pull_policy="Never")
    secret = model.secret_manifest(spec=spec, agent_id="a", secret="s3cr3t!x")

    env = pod["spec"]["containers"][0]["env"]
    passwords = [e for e in env if e["name"] == "VNC_PASSWORD"]
    assert passwords == [
        {
            "name": "VNC_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "ss-s1", "key": "vnc-password"}},
        }
    ]  # the agent's, never the template's literal one
    assert "s3cr3t!x" not in str(pod)
    assert secret["metadata"]["name"] == "ss-s1"
    assert model.secret_reference(pod) == ("ss-s1", "vnc-password")
    assert model.secret_value(secret, key="vnc-password") == "s3cr3t!x"
    # a pod from before sessions had secrets: no reference, so no password to answer
    assert model.secret_reference({"spec": {"containers": [{"env": env[:-1]}]}}) is None


def test_home_claims_are_per_user_and_template_and_never_collide() -> None:
    names = {
        model.claim_name(user="a-b", template="c"),
        model.claim_name(user="a", template="b-c"),
        model.claim_name(user="A", template="c"),
        model.claim_name(user="a", template="c"),
    }
    assert len(names) == 4
    assert all(len(name) <= 63 for name in names)


def test_the_record_gives_back_the_spec_it_was_made_from() -> None:
    record = model.record_manifest(spec=SPEC, agent_id="k8s-a", state="hibernated")
    assert model.spec_from_record(record) == SPEC
    assert model.record_state(record) == "hibernated"


def test_the_policy_admits_only_the_agent_pods_on_the_vnc_port_and_lets_nothing_out() -> None:
    policy = model.policy_manifest(agent_id="k8s-a", agent_pod_labels={"app": "agent"})
    (rule,) = policy["spec"]["ingress"]
    assert rule == {
        "from": [{"podSelector": {"matchLabels": {"app": "agent"}}}],
        "ports": [{"protocol": "TCP", "port": "vnc"}],
    }
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["egress"] == []


def test_the_egress_policy_opens_the_internet_but_no_private_range_to_egress_pods() -> None:
    policy = model.egress_policy_manifest(agent_id="k8s-a")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    internet, dns = policy["spec"]["egress"]

    assert selector["streamspace.io/egress"] == "on"
    assert pod_of(SPEC)["metadata"]["labels"]["streamspace.io/egress"] == "on"
    off = SessionSpec(**{**model.spec_to_dict(SPEC), "egress": False})
    assert pod_of(off)["metadata"]["labels"]["streamspace.io/egress"] == "off"
    block = internet["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
        block["except"]
    )
    assert {port["port"] for port in dns["ports"]} == {53}
    assert policy["spec"]["policyTypes"] == ["Egress"]


def test_pods_get_the_agents_default_limits_and_unlimited_only_where_allowed() -> None:
    bare = SessionSpec(session_id="s", user="u", template="t", image="i")
    policy = LimitPolicy(cpu=0.5, memory_mb=300)
    limits = pod_of(bare, limits=resolve_limits(bare, policy))["spec"]["containers"][0]
    assert limits["resources"]["limits"] == {"cpu": "500m", "memory": "300Mi"}

    unlimited = SessionSpec(session_id="s", user="u", template="t", image="i", cpu_limit=0)
    with pytest.raises(Exception, match="unlimited"):
        resolve_limits(unlimited, LimitPolicy())
    allowed = resolve_limits(unlimited, LimitPolicy(allow_unlimited=True))
    container = pod_of(unlimited, limits=allowed)["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"memory": "2048Mi"}


def pod(status: dict[str, Any], *, deleting: bool = False) -> dict[str, Any]:
    manifest = pod_of(SPEC, pull_policy="Never")
    if deleting:
        manifest["metadata"]["deletionTimestamp"] = "2026-12-04T18:00:00Z"
    return {**manifest, "status": status}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "session",
                "ready": False,
                "state": {"waiting": {"reason": reason, "message": message}},
            }
        ],
    }


@pytest.mark.parametrize(
    ("status", "state", "words"),
    [
        (
            waiting("ErrImagePull", "not found"),
            "failed",
            "image streamspace/browser:bookworm cannot be pulled (ErrImagePull",
        ),
        (waiting("ImagePullBackOff"), "failed", "cannot be pulled (ImagePullBackOff"),
        (waiting("ContainerCreating"), "starting", "pending"),
        (
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available",
                    }
                ],
            },
            "starting",
            "Unschedulable: 0/3 nodes are available",
        ),
        (
            {
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": "session",
                        "ready": False,
                        "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
                    }
                ],
            },
            "failed",
            "killed: out of memory",
        ),
        (
            {
                "phase": "Failed",
                "reason": "Evicted",
                "message": "The node was low on resource: memory.",
            },
            "failed",
            "evicted: The node was low on resource: memory.",
        ),
        (
            {
                "phase": "Running",
                "reason": "NodeLost",
                "message": "Node n1 which was running pod x is unresponsive",
            },
            "failed",
            "node lost: Node n1",
        ),
        ({"phase": "Unknown"}, "failed", "node lost"),
        (
            {
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": "session",
                        "ready": False,
                        "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
                    }
                ],
            },
            "failed",
            "exited with code 1: Error",
        ),
        (
            {
                "phase": "Running",
                "podIP": "10.1.2.3",
                "containerStatuses": [{"name": "session", "ready": False}],
            },
            "starting",
            "waiting for the VNC server",
        ),
    ],
)
def test_pod_status_reads_as_a_clear_session_state(
    status: dict[str, Any], state: str, words: str
) -> None:
    observed = model.observe_pod(pod(status), record="running")
    assert observed.state == state
    assert words in observed.detail
    assert observed.session_id == SPEC.session_id


def test_a_running_ready_pod_is_reached_at_its_pod_ip() -> None:
    status = {
        "phase": "Running",
        "podIP": "10.1.2.3",
        "containerStatuses": [{"name": "session", "ready": True}],
    }
    observed = model.observe_pod(pod(status), record="running")
    assert (observed.state, observed.vnc_host, observed.vnc_port) == ("running", "10.1.2.3", 5900)


def test_a_deleted_pod_reads_as_hibernated_only_when_the_record_says_so() -> None:
    status = {"phase": "Running", "podIP": "10.1.2.3"}
    assert model.observe_pod(pod(status, deleting=True), record="hibernated").state == "hibernated"
    assert model.observe_pod(pod(status, deleting=True), record="running").state == "missing"
    evicting = {
        **status,
        "conditions": [
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
            }
        ],
    }
    observed = model.observe_pod(pod(evicting, deleting=True), record="running")
    assert (observed.state, observed.detail) == ("failed", "evicted: Eviction API: evicting")


def test_vnc_is_reachable_while_the_container_runs_before_the_kubelet_calls_it_ready() -> None:
    not_ready = {
        "phase": "Running",
        "podIP": "10.1.2.3",
        "containerStatuses": [{"name": "session", "ready": False}],
    }
    assert model.running_address(pod(not_ready)) == ("10.1.2.3", 5900)
    assert model.running_address(pod(not_ready, deleting=True)) is None
    assert model.running_address(pod({"phase": "Pending"})) is None
    assert model.running_address(pod({"phase": "Failed", "podIP": "10.1.2.3"})) is None
