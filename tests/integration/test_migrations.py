"""Upgrading in place loses nothing: a database filled at every earlier revision is upgraded to
head on SQLite and PostgreSQL, and every row it held reads back unchanged afterwards.

The rows are generated from the schema as it stood at that revision (every table, every
column, foreign keys pointing at real parents), so the test keeps covering revisions to come.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.db.engine import create_engine
from streamspace.control_plane.db.migrate import alembic_config, upgrade

ROWS = 3


def revisions() -> list[str]:
    """Every revision but head, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    ordered = [r.revision for r in reversed(list(script.walk_revisions()))]
    return ordered[:-1]


def _value(column: sa.Column[Any], table: str, i: int) -> Any:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.BigInteger):
        return 10**15 + i
    if isinstance(kind, sa.Integer):
        return i + 1
    if isinstance(kind, sa.Float):
        return 0.5 + i
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i, microseconds=i)
    if isinstance(kind, sa.JSON):
        return {"row": i, "nested": {"list": [i, "x"]}}
    length = getattr(kind, "length", None) or 40
    return f"{table[:6]}-{column.name[:6]}-{i}"[:length]


def _fill(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Insert ROWS rows into every table, parents first; return what each table holds."""
    metadata = sa.MetaData()
    metadata.reflect(conn)
    written: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        if table.name == "alembic_version":
            continue
        rows = []
        for i in range(ROWS):
            row = {}
            for column in table.columns:
                parent = next(iter(column.foreign_keys), None)
                if parent is not None:
                    parent_rows = written[parent.column.table.name]
                    row[column.name] = parent_rows[i][parent.column.name]
                else:
                    row[column.name] = _value(column, table.name, i)
            rows.append(row)
        conn.execute(table.insert(), rows)
        written[table.name] = rows
    return _dump(conn, tables=list(written))


def _dump(conn: Connection, *, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    metadata = sa.MetaData()
    metadata.reflect(conn, only=tables)
    dumped = {}
    for name in tables:
        table = metadata.tables[name]
        pk = list(table.primary_key.columns) or list(table.columns)
        dumped[name] = [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*pk))]
    return dumped  # type: ignore[return-value]


@pytest.mark.parametrize("start", revisions())
async def test_upgrading_from_a_filled_database_loses_nothing(
    database_url: str, start: str
) -> None:
    engine = create_engine(ControlPlaneSettings(database_url=database_url))
    try:
        await upgrade(engine, start)
        async with engine.begin() as conn:
            before = await conn.run_sync(_fill)
        await upgrade(engine)
        async with engine.connect() as conn:
            after = await conn.run_sync(_dump, tables=list(before))
        for table, rows in before.items():
            assert len(after[table]) == len(rows), table
            for old, new in zip(rows, after[table], strict=True):
                kept = {k: new[k] for k in old}  # type: ignore[index]
                assert kept == old, f"{table}: a row changed on upgrade from {start}"
    finally:
        await engine.dispose()


async def test_new_template_columns_arrive_empty(database_url: str) -> None:
    """Revision 0002's `pull` starts as null (the platform's default) on existing templates."""
    engine = create_engine(ControlPlaneSettings(database_url=database_url))
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as conn:
            await conn.run_sync(_fill)
        await upgrade(engine, "0002")
        async with engine.connect() as conn:
            pulls = (await conn.execute(sa.text("SELECT pull FROM templates"))).scalars().all()
        assert pulls == [None] * ROWS
    finally:
        await engine.dispose()


async def test_existing_admins_keep_running_the_platform(database_url: str) -> None:
    """Revision 0003: before it every admin ran agents and replicas too, so an upgrade makes
    the existing admins platform admins, and nobody else; no user starts out removed."""
    engine = create_engine(ControlPlaneSettings(database_url=database_url))
    try:
        await upgrade(engine, "0002")
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO orgs (id, name, created_at) VALUES ('o1', 'default', :at)"),
                {"at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            for name, role in (("boss", "admin"), ("worker", "user")):
                await conn.execute(
                    sa.text(
                        "INSERT INTO users (id, org_id, username, password_hash, role, disabled,"
                        " created_at) VALUES (:name, 'o1', :name, 'x', :role, :no, :at)"
                    ),
                    {
                        "name": name,
                        "role": role,
                        "no": False,
                        "at": datetime(2026, 1, 1, tzinfo=UTC),
                    },
                )
        await upgrade(engine, "0003")
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT username, platform_admin, removed_at FROM users ORDER BY username")
            )
            assert [tuple(r) for r in rows] == [("boss", True, None), ("worker", False, None)]
    finally:
        await engine.dispose()


async def test_existing_templates_keep_internet_egress(database_url: str) -> None:
    """Revision 0004's `egress` starts on for existing templates (browsers had the internet
    before it)."""
    engine = create_engine(ControlPlaneSettings(database_url=database_url))
    try:
        await upgrade(engine, "0003")
        async with engine.begin() as conn:
            await conn.run_sync(_fill)
        await upgrade(engine, "0004")
        async with engine.connect() as conn:
            egress = (await conn.execute(sa.text("SELECT egress FROM templates"))).scalars().all()
        assert [bool(value) for value in egress] == [True] * ROWS
    finally:
        await engine.dispose()
