"""The chart's alert rules under promtool (syntax and a fires / stays-quiet case per alert) and
the install notes a user reads after `helm install`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.chart import CHART, render, require_promtool

ALERTS = CHART / "files" / "alerts.yaml"
ALERT_TESTS = CHART / "tests" / "alerts.test.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_rule_groups() -> None:
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    done = promtool("test", "rules", str(ALERT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == alerts
    assert quiet == alerts


def _notes(tmp_path: Path, *args: str, release: str = "streamspace") -> str:
    """NOTES.txt as `helm install` prints it: rendered through a copy of the chart where it is
    an ordinary template (helm template does not render NOTES)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    define = '{{- define "notes-probe" -}}\n' + notes + "\n{{- end }}\n"
    (chart / "templates" / "_notes_probe.tpl").write_text(define)
    probe = 'kind: Notes\nmetadata: {name: notes}\ntext: {{ include "notes-probe" . | toJson }}\n'
    (chart / "templates" / "notes-probe.yaml").write_text(probe)
    [obj] = [o for o in render(*args, release=release, chart=chart) if o["kind"] == "Notes"]
    return str(obj["text"])


def test_notes_tell_how_to_log_in_and_reach_the_ui(tmp_path: Path) -> None:
    notes = _notes(tmp_path)
    assert "user:     admin" in notes
    assert (
        "kubectl get secret -n default streamspace-api -o jsonpath='{.data.admin-password}'"
        in notes
    )
    assert "kubectl port-forward -n default service/streamspace-ui 8080:8080" in notes


def test_notes_show_the_ingress_host_and_warn_about_replicas_without_redis(
    tmp_path: Path,
) -> None:
    notes = _notes(
        tmp_path,
        "--set", "ingress.enabled=true",
        "--set", "ingress.hosts[0].host=desk.example.com",
        "--set", "api.replicaCount=3",
    )  # fmt: skip
    assert "http://desk.example.com/" in notes
    assert "WARNING: more than one API replica without the Redis AgentHub" in notes
