"""The built UI served by the control plane (what `streamspace up` does): client-side routes get
index.html, hashed assets are cached for a year and index.html never, and API paths, missing
files and the viewer page keep their own answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app import running_app


@pytest.fixture
def ui_dir(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>StreamSpace UI</title>")
    (root / "assets" / "index-abc123.js").write_text("console.log('ui')")
    (root / "favicon.svg").write_text("<svg/>")
    return root


async def test_single_page_app_routes_assets_and_api(ui_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with running_app(database_url=url, ui_dir=ui_dir) as (_, client):
        for route in ("/", "/sessions", "/sessions/0123abc", "/admin/agents", "/login"):
            r = await client.get(route)
            assert r.status_code == 200 and "StreamSpace UI" in r.text, route
            assert r.headers["cache-control"] == "no-cache", route
        asset = await client.get("/assets/index-abc123.js")
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert (await client.get("/favicon.svg")).status_code == 200
        assert (await client.get("/assets/gone-999.js")).status_code == 404  # not index.html
        api = await client.get("/api/v1/no-such-thing")
        assert api.status_code == 404 and api.json()["error"]["code"]
        assert (await client.get("/health")).json()["status"] == "ok"
        viewer = await client.get("/sessions/0123abc/view")  # the control plane's own page
        assert "StreamSpace UI" not in viewer.text
