"""Backup and restore of the database and the data directory's secrets: an installation restored
into a fresh database (either engine, from either engine) holds every row it held, its users
sign in with their passwords and new rows follow the restored ones; a database holding data is
refused unless replaced; a failed restore leaves the target as it was; a backup taken while the
API writes is one snapshot."""

from __future__ import annotations

import asyncio
import json
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from streamspace.backup.archive import pack, unpack
from streamspace.backup.restore import RestoreScope, restore_backup
from streamspace.backup.take import take_backup
from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.db.dump import RUNTIME_TABLES
from streamspace.control_plane.db.migrate import head_revision
from streamspace.control_plane.db.records import AgentRecord
from streamspace.errors import Conflict, ValidationFailed
from tests.support.app import context, login, make_user, running_app
from tests.support.services import fresh_postgres


class Quiet:
    def step(self, description: str, *, total: int | None, unit: str) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


@asynccontextmanager
async def fresh_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'target' / 'streamspace.db'}"
        return
    async with fresh_postgres() as url:
        yield url


def settings(url: str, data_dir: Path) -> ControlPlaneSettings:
    return ControlPlaneSettings(database_url=url, data_dir=data_dir)


async def backup(url: str, tmp_path: Path, name: str = "backup.tar.gz") -> Path:
    archive = tmp_path / name
    await take_backup(
        settings(url, tmp_path / "source-data"),
        archive=archive,
        database=True,
        homes=None,
        overwrite=False,
        progress=Quiet(),
    )
    return archive


async def restore(url: str, archive: Path, data_dir: Path, *, replace: bool = False) -> None:
    await restore_backup(
        settings(url, data_dir),
        archive=archive,
        scope=RestoreScope(database=True, homes=None, replace=replace),
        work_dir=None,
        progress=Quiet(),
    )


async def add_online_agent(app: FastAPI) -> None:
    async with context(app).db.begin() as db:
        db.add(
            AgentRecord(
                id="docker-backup-1",
                platform="docker",
                approval_status="approved",
                status="online",
                last_heartbeat=datetime.now(UTC),
                max_sessions=1000,
                capacity={"maxSessions": 1000, "nested": {"gpus": [0, 1]}},
            )
        )


async def fill(app: FastAPI, client: httpx.AsyncClient) -> str:
    """Users, a template with env, sessions with their commands and audit events; returns the
    id of one of alice's sessions."""
    admin = await login(client)
    alice = await make_user(client, admin, "alice", "alice-pass-1")
    await make_user(client, admin, "bob", "bob-pass-12", role="admin")
    template = {
        "name": "editor",
        "display_name": "Editor ✎",
        "image": "streamspace/terminal:bookworm",
        "env": {"EDITOR": "vim", "LANG": "C.UTF-8"},
        "cpu_limit": 0.5,
        "pull": "never",
    }
    assert (await client.post("/api/v1/templates", headers=admin, json=template)).status_code == 201
    await add_online_agent(app)
    sid = ""
    for name in ("editor", "terminal"):
        r = await client.post("/api/v1/sessions", headers=alice, json={"template": name})
        assert r.status_code == 202, r.text
        sid = sid or r.json()["id"]
    return sid


def _normal(value: Any) -> Any:
    """SQLite gives datetimes back without their (UTC) zone."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


async def contents(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every data table's rows, by primary key."""

    def read(conn: sa.Connection) -> dict[str, list[dict[str, Any]]]:
        metadata = sa.MetaData()
        metadata.reflect(conn)
        skipped = RUNTIME_TABLES | {"alembic_version"}
        return {
            t.name: [
                {k: _normal(v) for k, v in row.items()}
                for row in conn.execute(sa.select(t).order_by(*t.primary_key.columns)).mappings()
            ]
            for t in metadata.sorted_tables
            if t.name not in skipped
        }

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(read)
    finally:
        await engine.dispose()


async def revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
    finally:
        await engine.dispose()


async def tables(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return sorted(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("target", ["sqlite", "postgres"])
async def test_a_restored_installation_holds_what_the_backup_did(
    database_url: str, target: str, tmp_path: Path
) -> None:
    async with running_app(database_url=database_url) as (app, client):
        sid = await fill(app, client)
    archive = await backup(database_url, tmp_path)
    before = await contents(database_url)
    assert {t["name"] for t in before["templates"]} >= {"editor", "terminal"}
    assert before["audit_events"] and before["system_settings"]  # logins; the JWT secret
    async with fresh_database(target, tmp_path) as target_url:
        await restore(target_url, archive, tmp_path / "target")
        assert await contents(target_url) == before
        async with running_app(database_url=target_url) as (_app, client):
            # signing in writes an audit event: its id follows the restored ones
            alice = await login(client, "alice", "alice-pass-1")
            mine = (await client.get("/api/v1/sessions", headers=alice)).json()
            assert sid in [s["id"] for s in mine]
            editor = (await client.get("/api/v1/templates/editor", headers=alice)).json()
            assert editor["env"] == {"EDITOR": "vim", "LANG": "C.UTF-8"}
        assert len((await contents(target_url))["audit_events"]) == len(before["audit_events"]) + 1


async def test_a_database_holding_data_is_refused_unless_replaced(
    database_url: str, tmp_path: Path
) -> None:
    async with running_app(database_url=database_url) as (app, client):
        await fill(app, client)
    archive = await backup(database_url, tmp_path)
    before = await contents(database_url)
    async with fresh_database("sqlite", tmp_path) as target_url:
        async with running_app(database_url=target_url) as (_app, client):
            await make_user(client, await login(client), "carol")  # an installation in use
        with pytest.raises(Conflict, match=r"already holds StreamSpace data \(.*users: 2"):
            await restore(target_url, archive, tmp_path / "target")
        assert "carol" in [u["username"] for u in (await contents(target_url))["users"]]
        await restore(target_url, archive, tmp_path / "target", replace=True)
        assert await contents(target_url) == before


async def test_a_failed_restore_leaves_the_target_as_it_was(
    database_url: str, tmp_path: Path
) -> None:
    async with running_app(database_url=database_url) as (app, client):
        await fill(app, client)
    archive = await backup(database_url, tmp_path)
    broken = await _with_orphan_session(archive, tmp_path)
    async with (
        fresh_database("postgres", tmp_path) as empty,
        fresh_database("sqlite", tmp_path) as used,
    ):
        with pytest.raises(ValidationFailed, match="do not load into sessions"):
            await restore(empty, broken, tmp_path / "empty")
        assert await tables(empty) == []  # not even the schema
        async with running_app(database_url=used) as (_app, client):
            await make_user(client, await login(client), "carol")
        held = await contents(used)
        with pytest.raises(ValidationFailed, match="do not load into sessions"):
            await restore(used, broken, tmp_path / "used", replace=True)
        assert await contents(used) == held
        assert await revision(used) == head_revision()


async def _with_orphan_session(archive: Path, tmp_path: Path) -> Path:
    """The archive with one session pointing at a user that does not exist."""
    staging = tmp_path / "broken"
    manifest = unpack(archive, into=staging, progress=Quiet())
    sessions = staging / "database" / "sessions.jsonl"
    rows = [json.loads(line) for line in sessions.read_text().splitlines()]
    rows[-1]["user_id"] = "nobody"
    sessions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    broken = tmp_path / "broken.tar.gz"
    pack(staging, manifest=manifest, archive=broken, progress=Quiet())
    return broken


async def test_a_backup_taken_while_the_api_writes_is_one_snapshot(
    database_url: str, tmp_path: Path
) -> None:
    """A session, its start command and its audit event are written in one transaction: every
    backup taken meanwhile holds all three or none."""
    async with running_app(database_url=database_url) as (app, client):
        await add_online_agent(app)
        admin = await login(client)
        stop = asyncio.Event()

        async def keep_creating() -> int:
            made = 0
            while not stop.is_set():
                r = await client.post(
                    "/api/v1/sessions", headers=admin, json={"template": "terminal"}
                )
                assert r.status_code == 202, r.text
                made += 1
            return made

        writer = asyncio.create_task(keep_creating())
        archives = [await backup(database_url, tmp_path, f"b{i}.tar.gz") for i in range(4)]
        stop.set()
        assert await writer > 0
    for i, archive in enumerate(archives):
        unpack(archive, into=tmp_path / f"u{i}", progress=Quiet())
        rows = _rows(tmp_path / f"u{i}")
        sessions = {r["id"] for r in rows["sessions"]}
        commands = {r["session_id"] for r in rows["agent_commands"]}
        audited = {r["target"] for r in rows["audit_events"] if r["action"] == "session.create"}
        assert sessions == commands == audited


def _rows(staging: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        path.stem: [json.loads(line) for line in path.read_text().splitlines()]
        for path in (staging / "database").glob("*.jsonl")
    }


async def test_the_archive_is_private_and_keeps_the_secrets_modes(
    database_url: str, tmp_path: Path
) -> None:
    source_data = tmp_path / "source-data"
    source_data.mkdir()
    (source_data / "admin-password").write_text("generated-once\n")
    (source_data / "admin-password").chmod(0o600)
    async with running_app(database_url=database_url):
        archive = await backup(database_url, tmp_path)
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == "manifest.json"
    async with fresh_database("sqlite", tmp_path) as target_url:
        await restore(target_url, archive, tmp_path / "target")
    restored = tmp_path / "target" / "admin-password"
    assert restored.read_text() == "generated-once\n"
    assert restored.stat().st_mode & 0o777 == 0o600
