"""The Grafana dashboards (deploy/grafana/*.json) import as they are and never point at a
metric a running control plane does not export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.app import create_app
from tests.support.app import ADMIN_PASSWORD, login
from tests.support.cluster import BOOTSTRAP_KEY, enroll_agent
from tests.support.lean import serve

pytestmark = [pytest.mark.redis]
DASHBOARDS = sorted((Path(__file__).parents[2] / "deploy" / "grafana").glob("*.json"))
METRIC = re.compile(r"\bstreamspace_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_sum", "_count")


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return [p for p in out if p["type"] != "row"]


def referenced(dashboard: dict[str, Any]) -> set[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    names = set()
    for expr in exprs:
        found = METRIC.findall(expr)
        assert found, f"an expression without a StreamSpace metric: {expr}"
        names.update(strip(name) for name in found)
    return names


def strip(name: str) -> str:
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def test_there_are_dashboards() -> None:
    assert DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_imports_with_a_prometheus_input(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["uid"] and dashboard["title"]
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["description"] and panel["targets"], panel["title"]


async def test_every_metric_a_dashboard_reads_is_exported(
    database_url: str, clean_redis: str
) -> None:
    """A replica with Redis, one agent connected and one session: what a real one exports."""
    redis = urlsplit(clean_redis)
    settings = ControlPlaneSettings(
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        agent_bootstrap_key=BOOTSTRAP_KEY,
        agenthub_redis_enabled=True,
        redis_host=redis.hostname,
        redis_port=redis.port,
    )
    async with serve(create_app(settings)) as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            admin = await login(client)
            key = await enroll_agent(base, admin, "dashboards")
            async with websockets.connect(
                base.replace("http", "ws", 1) + "/api/v1/agents/connect",
                additional_headers={"X-Agent-API-Key": key, "X-Agent-Epoch": "1"},
            ) as agent:
                await agent.recv()  # welcome: attached
                r = await client.post(
                    "/api/v1/sessions", headers=admin, json={"template": "terminal"}
                )
                assert r.status_code == 202, r.text
                text = (await client.get("/api/v1/metrics")).text
    # names with a sample (a labelled metric never set has only its # TYPE line)
    exported = {
        strip(re.split(r"[{ ]", line, maxsplit=1)[0])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    for path in DASHBOARDS:
        missing = referenced(json.loads(path.read_text())) - exported
        assert not missing, f"{path.name} reads metrics nobody exports: {sorted(missing)}"
