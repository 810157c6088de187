"""Rendering the Helm chart for the deploy tests: where the tools are, `helm template` as parsed
objects, and lookups into them. No assertions here."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "streamspace"
HELM = ROOT / ".tools" / "k8s" / "bin" / "helm"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
GUIDE_BLOCKS = sorted((Path(__file__).parent / "guide_values").glob("*.yaml"))
INSTALL_HINT = "run scripts/k8s-tools.sh"

Obj = dict[str, Any]


def unavailable(reason: str) -> None:
    if os.environ.get("STREAMSPACE_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (STREAMSPACE_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def require_helm() -> Path:
    if not os.access(HELM, os.X_OK):
        unavailable(f"no helm at {HELM.relative_to(ROOT)} ({INSTALL_HINT})")
    return HELM


def require_promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        unavailable(f"promtool is not on PATH ({INSTALL_HINT})")
    return str(found)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(require_helm()), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@functools.cache
def _render(release: str, args: tuple[str, ...], chart: Path) -> tuple[Obj, ...]:
    done = helm("template", release, str(chart), *args)
    if done.returncode:
        raise AssertionError(f"helm template {' '.join(args)} failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def render(*args: str, release: str = "streamspace", chart: Path = CHART) -> list[Obj]:
    """`helm template <release> <chart> <args>` as a list of objects (cached per arguments)."""
    return list(_render(release, args, chart))


def values_args(path: Path | None) -> tuple[str, ...]:
    return ("-f", str(path)) if path else ()


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    names = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objs)
    raise AssertionError(f"no {kind}/{name} among {names}")


def kinds_and_names(objs: list[Obj]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objs}


def container(deployment: Obj) -> Obj:
    containers: list[Obj] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env(deployment: Obj) -> dict[str, Any]:
    """name -> value, or the valueFrom mapping for variables from a field or a Secret."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}
