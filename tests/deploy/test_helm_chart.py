"""The Helm chart deploy/helm/streamspace: lint, every rendered object valid for Kubernetes 1.29
and 1.32, and what a user of the scalability guide relies on (names, labels, env, RBAC)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.chart import (
    CHART,
    EXAMPLES,
    GUIDE_BLOCKS,
    ROOT,
    Obj,
    container,
    env,
    find,
    helm,
    kinds_and_names,
    render,
    values_args,
)


def sets(*assignments: str) -> tuple[str, ...]:
    """`--set a=b --set c=d` for helm."""
    return tuple(arg for assignment in assignments for arg in ("--set", assignment))


# The guide's agent-only install (Deployment Examples > Example 2, Cluster A).
AGENT_ONLY = sets(
    "k8sAgent.enabled=true",
    "k8sAgent.config.agentId=k8s-prod-us-east-1",
    "k8sAgent.config.controlPlaneUrl=wss://api.streamspace.com",
    "k8sAgent.config.region=us-east-1",
    "api.enabled=false",
    "ui.enabled=false",
    "postgresql.enabled=false",
)
# Prometheus Operator CRDs: not in the Kubernetes schemas; their shape is checked on its own.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
MONITORING = sets(
    "monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true"
)

CASES: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "defaults+monitoring": MONITORING,
    "agent-only (guide)": AGENT_ONLY,
    **{f"examples/{p.name}": values_args(p) for p in EXAMPLES},
    **{f"guide/{p.name}": values_args(p) for p in GUIDE_BLOCKS},
}


@pytest.mark.parametrize(
    "values",
    [None, *EXAMPLES, *GUIDE_BLOCKS],
    ids=lambda p: f"{p.parent.name}/{p.name}" if p else "defaults",
)
def test_helm_lint_strict(values: Path | None) -> None:
    done = helm("lint", "--strict", str(CHART), *values_args(values))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kube", ["1.29", "1.32"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_rendered_object_is_valid_kubernetes(case: str, kube: str) -> None:
    objs = render(*CASES[case], "--kube-version", f"{kube}.0")
    assert objs
    for obj in objs:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, kube, strict=True)
        except kubernetes_validate.ValidationError as exc:
            first_line = str(exc).splitlines()[0]
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {first_line}")


def test_the_guides_names_and_component_labels() -> None:
    objs = render(*values_args(CHART / "examples" / "values-staging.yaml"))
    for name, component in [
        ("streamspace-api", "api"),
        ("streamspace-ui", "ui"),
        ("streamspace-k8s-agent", "k8s-agent"),
        ("streamspace-redis", "redis"),
    ]:
        labels = find(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == component
        assert labels["app.kubernetes.io/instance"] == "streamspace"
        assert labels["app.kubernetes.io/name"] == "streamspace"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    pg = find(objs, "StatefulSet", "streamspace-postgresql")
    assert pg["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "postgresql"
    )
    assert find(objs, "Service", "streamspace-api")["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    prod = render(*values_args(CHART / "examples" / "values-production.yaml"))
    hpa = find(prod, "HorizontalPodAutoscaler", "streamspace-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "streamspace-api"


def test_images_default_to_the_locally_built_names_and_the_app_version() -> None:
    objs = render()
    for deployment, image in [
        ("streamspace-api", "streamspace/control-plane:0.1.0"),
        ("streamspace-ui", "streamspace/ui:0.1.0"),
        ("streamspace-k8s-agent", "streamspace/agent:0.1.0"),
    ]:
        c = container(find(objs, "Deployment", deployment))
        assert (c["image"], c["imagePullPolicy"]) == (image, "IfNotPresent")


@pytest.mark.parametrize(
    ("redis", "agent_hub", "expected"),
    [("true", "true", "true"), ("true", "false", "false"), ("false", "true", "false")],
)
def test_agenthub_redis_follows_redis_agent_hub_enabled(
    redis: str, agent_hub: str, expected: str
) -> None:
    args = sets(f"redis.enabled={redis}", f"redis.agentHubEnabled={agent_hub}")
    api_env = env(find(render(*args), "Deployment", "streamspace-api"))
    assert api_env["AGENTHUB_REDIS_ENABLED"] == expected
    if redis == "true":
        assert (api_env["REDIS_HOST"], api_env["REDIS_PORT"]) == ("streamspace-redis", "6379")
    else:
        assert "REDIS_HOST" not in api_env


def _secret_ref(value: Any) -> tuple[str, str]:
    ref = value["secretKeyRef"]
    return ref["name"], ref["key"]


def test_production_values_use_sentinel_and_the_guides_secrets() -> None:
    objs = render(*values_args(CHART / "examples" / "values-production.yaml"))
    api_env = env(find(objs, "Deployment", "streamspace-api"))
    assert api_env["REDIS_SENTINEL_HOSTS"] == "redis-sentinel.example.com:26379"
    assert api_env["REDIS_SENTINEL_MASTER"] == "mymaster"
    assert _secret_ref(api_env["REDIS_PASSWORD"]) == ("redis-credentials", "redis-password")
    assert _secret_ref(api_env["DB_PASSWORD"]) == ("postgres-credentials", "postgres-password")
    assert api_env["DATABASE_URL"] == (
        "postgresql+asyncpg://streamspace:$(DB_PASSWORD)@postgres-ha.example.com:5432/streamspace"
    )
    assert api_env["AGENTHUB_REDIS_ENABLED"] == "true"
    assert not {("Deployment", "streamspace-redis"), ("StatefulSet", "streamspace-postgresql")} & (
        kinds_and_names(objs)
    )


@pytest.mark.parametrize(
    ("args", "hosts"),
    [
        (values_args(ROOT / "tests/deploy/guide_values/redis-external.yaml"), None),
        (
            sets(
                "redis.enabled=true",
                "redis.external.enabled=true",
                "redis.external.host=r.example.com",
                "redis.external.sentinel.enabled=true",
                "redis.external.sentinel.masterName=main",
                "redis.external.sentinel.hosts={s1:26379,s2:26379}",
            ),
            "s1:26379,s2:26379",
        ),
        (
            values_args(CHART / "examples" / "values-production.yaml")
            + sets("redis.external.sentinel.enabled=false"),
            None,
        ),
    ],
    ids=["port-6379-plain-redis", "explicit-sentinel", "26379-but-sentinel-off"],
)
def test_sentinel_mode_is_automatic_on_26379_or_explicit(
    args: tuple[str, ...], hosts: str | None
) -> None:
    api_env = env(find(render(*args), "Deployment", "streamspace-api"))
    assert api_env.get("REDIS_SENTINEL_HOSTS") == hosts
    if hosts:
        assert api_env["REDIS_SENTINEL_MASTER"] == "main"


def test_the_guides_agent_only_install_renders_just_the_agent_and_its_rbac() -> None:
    objs = render(*AGENT_ONLY, release="streamspace-agent-us-east")
    name = "streamspace-agent-us-east-k8s-agent"
    assert kinds_and_names(objs) == {
        ("Deployment", name),
        ("ServiceAccount", name),
        ("Role", name),
        ("RoleBinding", name),
        ("Secret", f"{name}-vnc"),  # its VNC seed, made once and kept
    }
    agent_env = env(find(objs, "Deployment", name))
    assert agent_env["AGENT_ID"] == "k8s-prod-us-east-1"
    assert agent_env["CONTROL_PLANE_URL"] == "wss://api.streamspace.com"
    assert agent_env["REGION"] == "us-east-1"


def test_the_agent_gets_its_settings_from_the_values() -> None:
    args = values_args(CHART / "examples" / "values-production.yaml")
    args += sets(
        "k8sAgent.ha.enabled=true",
        "k8sAgent.existingSecret=agent-keys",
        "k8sAgent.sessions.storageClass=fast",
    )
    agent = find(render(*args), "Deployment", "streamspace-k8s-agent")
    agent_env = env(agent)
    assert {k: agent_env[k] for k in ["PLATFORM", "MAX_SESSIONS", "ENABLE_HA"]} == {
        "PLATFORM": "kubernetes",
        "MAX_SESSIONS": "200",
        "ENABLE_HA": "true",
    }
    assert agent_env["LEADER_ELECTION_BACKEND"] == "kubernetes"
    assert [agent_env[k] for k in ["LEASE_DURATION", "RENEW_DEADLINE", "RETRY_PERIOD"]] == [
        "15",
        "10",
        "2",
    ]
    assert agent_env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert agent_env["NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert agent_env["AGENT_POD_LABELS"] == (
        "app.kubernetes.io/component=k8s-agent,app.kubernetes.io/instance=streamspace"
    )
    assert agent_env["AGENT_KEY_SECRET"] == "streamspace-k8s-agent-key"
    assert (agent_env["SESSION_STORAGE_CLASS"], agent_env["SESSION_HOME_SIZE"]) == ("fast", "5Gi")
    assert _secret_ref(agent_env["AGENT_BOOTSTRAP_KEY"]) == ("agent-keys", "bootstrap-key")
    assert _secret_ref(agent_env["AGENT_API_KEY"]) == ("agent-keys", "api-key")
    labels = agent["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "k8s-agent"


def test_the_in_release_agent_dials_the_api_service_with_the_release_bootstrap_key() -> None:
    objs = render()
    agent_env = env(find(objs, "Deployment", "streamspace-k8s-agent"))
    assert agent_env["CONTROL_PLANE_URL"] == "http://streamspace-api:8080"
    api_env = env(find(objs, "Deployment", "streamspace-api"))
    assert _secret_ref(agent_env["AGENT_BOOTSTRAP_KEY"]) == _secret_ref(
        api_env["AGENT_BOOTSTRAP_KEY"]
    )
    secret = find(objs, "Secret", "streamspace-api")
    assert set(secret["data"]) == {"jwt-secret", "admin-password", "agent-bootstrap-key"}


def test_the_agent_derives_vnc_passwords_from_a_kept_seed_of_its_own() -> None:
    objs = render()
    agent_env = env(find(objs, "Deployment", "streamspace-k8s-agent"))
    assert _secret_ref(agent_env["VNC_SECRET_SEED"]) == ("streamspace-k8s-agent-vnc", "seed")
    seed = find(objs, "Secret", "streamspace-k8s-agent-vnc")
    assert seed["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(base64.b64decode(seed["data"]["seed"])) >= 32


def test_the_agent_role_is_exactly_the_least_privilege_list() -> None:
    role = find(render(), "Role", "streamspace-k8s-agent")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    expected = {
        *(("", "pods", v) for v in ["get", "list", "watch", "create", "delete"]),
        ("", "pods/log", "get"),
        *(("", "configmaps", v) for v in ["get", "list", "create", "patch", "delete"]),
        ("", "persistentvolumeclaims", "create"),
        ("networking.k8s.io", "networkpolicies", "create"),
        ("networking.k8s.io", "networkpolicies", "patch"),
        *(("coordination.k8s.io", "leases", v) for v in ["get", "create", "update"]),
        # create only, and get/patch on the key Secret: no read of the API's JWT secret
        *(("", "secrets", v) for v in ["create", "get", "patch"]),
    }
    assert granted == expected
    (policies,) = [
        rule
        for rule in role["rules"]
        if "patch" in rule["verbs"] and rule["resources"] == ["networkpolicies"]
    ]
    assert policies["resourceNames"] == [
        "streamspace-sessions-k8s-default",
        "streamspace-sessions-k8s-default-egress",
    ]
    named = [
        rule
        for rule in role["rules"]
        if "patch" in rule["verbs"] and rule["resources"] == ["secrets"]
    ]
    assert named == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["streamspace-k8s-agent-key"],
            "verbs": ["get", "patch"],
        }
    ]
    unnamed = [
        rule
        for rule in role["rules"]
        if rule["resources"] == ["secrets"] and "resourceNames" not in rule
    ]
    assert unnamed == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    binding = find(render(), "RoleBinding", "streamspace-k8s-agent")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "streamspace-k8s-agent", "namespace": "default"}
    ]


@pytest.mark.parametrize(
    "typo", ["api.replicaCont=3", "k8sAgent.config.agentid=x", "redis.external.hots=r"]
)
def test_the_schema_rejects_a_typo(typo: str) -> None:
    done = helm("template", "streamspace", str(CHART), "--set", typo)
    assert done.returncode != 0
    assert typo.split("=")[0].rsplit(".", 1)[1] in done.stderr


def test_api_replicas_spread_across_nodes_by_default_and_affinity_overrides() -> None:
    affinity = find(render(), "Deployment", "streamspace-api")["spec"]["template"]["spec"][
        "affinity"
    ]
    assert affinity == {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "api"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }
    zone = "api.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
    override = ("--set-json", f'{zone}=[{{"weight": 1, "preference": {{"matchExpressions": []}}}}]')
    spec = find(render(*override), "Deployment", "streamspace-api")["spec"]["template"]["spec"]
    assert list(spec["affinity"]) == ["nodeAffinity"]


def test_api_pods_know_their_name_and_address_and_are_probed() -> None:
    args = ("--set-json", 'api.env=[{"name": "DB_MAX_OPEN_CONNS", "value": "40"}]')
    api = find(render(*args), "Deployment", "streamspace-api")
    api_env = env(api)
    assert api_env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert api_env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert api_env["STREAMSPACE_INTERNAL_URL"] == "http://$(POD_IP):8080"
    assert (api_env["STREAMSPACE_HOST"], api_env["STREAMSPACE_PORT"]) == ("0.0.0.0", "8080")
    assert api_env["DB_MAX_OPEN_CONNS"] == "40"
    assert _secret_ref(api_env["STREAMSPACE_JWT_SECRET"]) == ("streamspace-api", "jwt-secret")
    assert _secret_ref(api_env["DB_PASSWORD"]) == ("streamspace-postgresql", "postgres-password")
    names = [e["name"] for e in container(api)["env"]]
    assert names.index("POD_IP") < names.index("STREAMSPACE_INTERNAL_URL")
    assert names.index("DB_PASSWORD") < names.index("DATABASE_URL")
    c = container(api)
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}


@pytest.mark.parametrize("case", ["defaults", "examples/values-staging.yaml"])
def test_every_pod_runs_restricted(case: str) -> None:
    uids = {"api": 10001, "k8s-agent": 10001, "ui": 101, "redis": 999, "postgresql": 999}
    for obj in render(*CASES[case]):
        if obj["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        pod = obj["spec"]["template"]["spec"]
        component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uids[component]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container(obj)["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }


def test_ingress_routes_api_and_ui_with_websocket_settings_and_tls() -> None:
    objs = render(*values_args(CHART / "examples" / "values-production.yaml"))
    ingress = find(objs, "Ingress", "streamspace")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["streamspace.example.com"], "secretName": "streamspace-tls"}
    ]
    [rule] = ingress["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert routes == {"/api": "streamspace-api", "/": "streamspace-ui"}


def test_the_ui_serves_the_projects_nginx_config_proxying_to_the_api_service() -> None:
    config = find(render(), "ConfigMap", "streamspace-ui")["data"]
    project = (ROOT / "deploy" / "nginx" / "streamspace.conf").read_text()
    assert config["streamspace.conf"].strip() == project.strip()
    assert "server streamspace-api.default.svc:8080" in config["upstream.conf"]
    assert "include /etc/streamspace/nginx/streamspace.conf;" in config["nginx.conf"]


def _monitoring() -> list[Obj]:
    return render(*MONITORING)


def test_service_monitor_scrapes_the_guides_endpoint() -> None:
    monitor = find(_monitoring(), "ServiceMonitor", "streamspace-api")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/api/v1/metrics", "interval": "30s"}
    ]


def test_metrics_token_is_required_by_the_api_and_sent_by_the_service_monitor() -> None:
    objs = render(*MONITORING, *sets("monitoring.metricsToken=true"))
    secret = find(objs, "Secret", "streamspace-api")
    assert len(base64.b64decode(secret["data"]["metrics-token"])) >= 16
    [api] = find(objs, "Deployment", "streamspace-api")["spec"]["template"]["spec"]["containers"]
    variables = {e["name"]: e for e in api["env"]}
    assert variables["STREAMSPACE_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "streamspace-api",
        "key": "metrics-token",
    }
    [endpoint] = find(objs, "ServiceMonitor", "streamspace-api")["spec"]["endpoints"]
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "streamspace-api", "key": "metrics-token"},
    }
    # off by default: the metrics stay open, as before
    [api] = find(_monitoring(), "Deployment", "streamspace-api")["spec"]["template"]["spec"][
        "containers"
    ]
    assert "STREAMSPACE_METRICS_TOKEN" not in {e["name"] for e in api["env"]}


def test_prometheus_rule_carries_the_guides_alerts() -> None:
    rule = find(_monitoring(), "PrometheusRule", "streamspace-alerts")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    [group] = rule["spec"]["groups"]
    assert (group["name"], group["interval"]) == ("streamspace", "30s")
    alerts = {r["alert"]: r for r in group["rules"]}
    assert alerts["NoAgentsConnected"]["expr"] == "streamspace_agents_connected == 0"
    assert alerts["NoAgentsConnected"]["for"] == "5m"
    assert alerts["HighCommandFailureRate"]["expr"] == (
        "rate(streamspace_commands_failed_total[5m]) > 0.1"
    )
    assert alerts["HighCommandFailureRate"]["for"] == "10m"
    assert alerts["HighCommandFailureRate"]["annotations"]["summary"] == (
        "High command failure rate (>10%)"
    )
    assert {"ReplicaWithoutRedis", "AgentFlapping", "CommandFailureRatioHigh"} <= set(alerts)
    assert "SessionStartFailures" in alerts
    assert not {"ServiceMonitor", "PrometheusRule"} & {o["kind"] for o in render()}
