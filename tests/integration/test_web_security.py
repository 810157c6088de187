"""What a browser and a scraper get from the control plane: security headers (a CSP without
inline scripts, no framing but the viewer by the UI, nosniff, no referrer, HSTS over HTTPS) on
the UI, the viewer page, the API and the API docs; the docs from the package, naming no other
host; and /api/v1/metrics behind STREAMSPACE_METRICS_TOKEN when it is set."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from streamspace.control_plane.web.viewer_page import NOVNC
from tests.support.app import login, running_app

Client = tuple[FastAPI, httpx.AsyncClient]
METRICS_TOKEN = "scrape-token-0123456789"


@pytest.fixture
async def app_client(database_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    (tmp_path / "index.html").write_text('<!doctype html><script type="module" src="/a.js">')
    async with running_app(database_url=database_url, ui_dir=tmp_path) as pair:
        yield pair


def directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    parts = [p.strip().partition(" ") for p in policy.split(";") if p.strip()]
    return {name: value for name, _, value in parts}


def assert_protected(
    response: httpx.Response, *, framed_by: str = "'none'", styles: str = "'self'"
) -> None:
    csp = directives(response)
    assert csp["script-src"] == "'self'"  # no inline script, no eval
    assert csp["style-src"] == styles
    assert csp["frame-ancestors"] == framed_by
    assert csp["default-src"] == "'self'" and csp["object-src"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in response.headers  # plain HTTP


async def test_headers_on_the_ui_the_api_and_errors(app_client: Client) -> None:
    _, client = app_client
    admin = await login(client)
    for ui in ("/", "/sessions/abc"):  # index.html, for a client-side route too
        # the UI kit (Mantine) writes its theme into <style> elements: inline styles only
        assert_protected(await client.get(ui), styles="'self' 'unsafe-inline'")
    for response in (
        await client.get("/api/v1/templates", headers=admin),
        await client.get("/api/v1/templates"),  # 401
        await client.get("/api/v1/nothing-here"),  # 404
        await client.post("/api/v1/auth/login", content=b"x" * (2 << 20)),  # 413, middleware
        await client.get("/health"),
    ):
        assert_protected(response)
    for path in ("/", "/api/v1/templates"):  # one policy each, not the default beside another
        got = (await client.get(path, headers=admin)).headers
        assert len(got.get_list("content-security-policy")) == 1, path


async def test_the_viewer_page_may_be_framed_by_the_ui_only(app_client: Client) -> None:
    _, client = app_client
    if not (NOVNC / "core" / "rfb.js").exists():
        pytest.skip("noVNC is not installed (make setup)")
    page = await client.get("/sessions/abc/view")
    assert page.status_code == 200
    assert_protected(page, framed_by="'self'")
    assert "<script>" not in page.text  # every script is a file: the CSP allows no inline one
    assert_protected(await client.get("/static/viewer/viewer.js"))


async def test_api_docs_come_from_the_package(app_client: Client) -> None:
    _, client = app_client
    page = await client.get("/api/docs")
    assert page.status_code == 200
    assert_protected(page)
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text), page.text
    assert "<script>" not in page.text
    assets = re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 0
    assert (await client.get("/api/openapi.json")).status_code == 200


async def test_hsts_only_over_https_unless_told(database_url: str) -> None:
    async with running_app(database_url=database_url) as (app, client):
        assert "strict-transport-security" not in (await client.get("/health")).headers
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as tls:
            hsts = (await tls.get("/health")).headers["strict-transport-security"]
            assert hsts == "max-age=31536000"
    async with running_app(database_url=database_url, hsts="always") as (_, client):
        assert "strict-transport-security" in (await client.get("/health")).headers
    async with running_app(database_url=database_url, hsts="off") as (app, _):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as tls:
            assert "strict-transport-security" not in (await tls.get("/health")).headers


async def test_metrics_are_open_without_a_token(app_client: Client) -> None:
    _, client = app_client
    response = await client.get("/api/v1/metrics")
    assert response.status_code == 200 and "streamspace_agents_connected" in response.text


async def test_metrics_need_the_token_when_one_is_set(database_url: str) -> None:
    async with running_app(database_url=database_url, metrics_token=METRICS_TOKEN) as (_, client):
        missing = await client.get("/api/v1/metrics")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "missing_token"
        assert_protected(missing)
        for wrong in (
            METRICS_TOKEN + "x",
            METRICS_TOKEN[:-1],
            "",
            (await login(client))["Authorization"].split()[1],
        ):  # a login token, even an admin's, is not the scrape token
            response = await client.get(
                "/api/v1/metrics", headers={"Authorization": f"Bearer {wrong}"}
            )
            assert response.status_code == 401, wrong
            assert response.json()["error"]["code"] in ("invalid_token", "missing_token")
        scraped = await client.get(
            "/api/v1/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        assert scraped.status_code == 200 and "streamspace_agents_connected" in scraped.text
