"""The chart's internal Redis and PostgreSQL (flags, persistence, who may connect) and the
messages `helm install` gives for values that cannot work; the UI's nginx config under nginx."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.chart import (
    CHART,
    GUIDE_BLOCKS,
    container,
    find,
    helm,
    render,
    unavailable,
    values_args,
)

STAGING = values_args(CHART / "examples" / "values-staging.yaml")
GUIDE = {p.stem: p for p in GUIDE_BLOCKS}


def test_the_guides_redis_tuning_becomes_redis_server_flags() -> None:
    args = STAGING + values_args(GUIDE["redis-memory"]) + values_args(GUIDE["redis-persistence"])
    redis = find(render(*args), "Deployment", "streamspace-redis")
    flags = container(redis)["args"]
    pairs = dict(zip(flags[::2], flags[1::2], strict=True))
    assert pairs == {
        "--dir": "/data",
        "--maxmemory": "450mb",
        "--maxmemory-policy": "allkeys-lru",
        "--appendonly": "yes",
        "--appendfsync": "everysec",
        "--save": "900 1 300 10 60 10000",
    }
    assert container(redis)["resources"]["limits"]["memory"] == "512Mi"
    volume = redis["spec"]["template"]["spec"]["volumes"][0]
    assert volume["persistentVolumeClaim"] == {"claimName": "streamspace-redis"}
    claim = find(render(*args), "PersistentVolumeClaim", "streamspace-redis")
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_redis_without_persistence_keeps_nothing_on_disk() -> None:
    redis = find(render("--set", "redis.enabled=true"), "Deployment", "streamspace-redis")
    assert container(redis)["args"] == ["--dir", "/data", "--save", "", "--appendonly", "no"]
    assert redis["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]


def test_postgresql_persists_with_a_generated_url_safe_password() -> None:
    objs = render(*STAGING)
    pg = find(objs, "StatefulSet", "streamspace-postgresql")
    [claim] = pg["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    secret = find(objs, "Secret", "streamspace-postgresql")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert set(secret["data"]) == {"postgres-password"}
    dev = render(*values_args(CHART / "examples" / "values-development.yaml"))
    dev_pg = find(dev, "StatefulSet", "streamspace-postgresql")
    assert "volumeClaimTemplates" not in dev_pg["spec"]


@pytest.mark.parametrize("component", ["redis", "postgresql"])
def test_only_the_api_pods_may_connect_to_redis_and_postgresql(component: str) -> None:
    policy = find(render(*STAGING), "NetworkPolicy", f"streamspace-{component}")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        component
    )
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert peer == {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "streamspace",
                "app.kubernetes.io/instance": "streamspace",
                "app.kubernetes.io/component": "api",
            }
        }
    }


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["postgresql.enabled=false"],
            "the API needs a database: set postgresql.enabled=true (internal) or "
            "postgresql.external.enabled=true",
        ),
        (
            ["api.enabled=false", "ui.enabled=false", "postgresql.enabled=false"],
            "k8sAgent.config.controlPlaneUrl is required when the API is not in this release",
        ),
        (
            ["redis.enabled=true", "redis.external.enabled=true"],
            "redis.external.host is required with redis.external.enabled",
        ),
        (
            ["postgresql.external.enabled=true", "postgresql.external.host=db"],
            "postgresql.external needs existingSecret (key postgres-password) or password",
        ),
        (
            ["api.enabled=false", "k8sAgent.enabled=false"],
            "ui.enabled without api.enabled: set ui.apiUpstream",
        ),
    ],
    ids=["no-database", "agent-without-url", "redis-without-host", "pg-without-password", "ui"],
)
def test_impossible_values_fail_with_a_message_that_says_what_to_set(
    sets: list[str], message: str
) -> None:
    args = [arg for assignment in sets for arg in ("--set", assignment)]
    done = helm("template", "streamspace", str(CHART), *args)
    assert done.returncode != 0
    assert message in done.stderr


def test_the_ui_pods_nginx_config_is_accepted_by_nginx(tmp_path: Path) -> None:
    """`nginx -t` on the UI ConfigMap as the pod mounts it (the API Service name swapped for a
    loopback address, as it does not resolve here)."""
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/bin")
    if not nginx:
        unavailable("nginx is not installed (scripts/test-services.sh installs it)")
    config = find(render(), "ConfigMap", "streamspace-ui")["data"]
    for name, text in config.items():
        text = text.replace(" /tmp/", f" {tmp_path}/")
        text = text.replace("/etc/streamspace/nginx/", f"{tmp_path}/")
        text = text.replace("streamspace-api.default.svc:8080", "127.0.0.1:9")
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [nginx, "-t", "-q", "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
