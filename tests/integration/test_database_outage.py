"""A database that stops answering is a 503 with a clear body (retry), never a 500."""

from __future__ import annotations

from pathlib import Path

from tests.support.app import login, running_app


async def test_unreachable_database_is_503_not_500(tmp_path: Path) -> None:
    db_file = tmp_path / "streamspace.db"
    async with running_app(database_url=f"sqlite+aiosqlite:///{db_file}") as (app, client):
        headers = await login(client)
        # Make the database unusable under the running app: the next queries fail at once.
        engine = app.state.ctx.engine
        await engine.dispose()
        db_file.unlink()
        db_file.mkdir()  # a directory where the database file was: sqlite cannot open it
        r = await client.get("/api/v1/templates", headers=headers)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
        assert r.headers["Retry-After"] == "1"
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("failed")
        db_file.rmdir()
