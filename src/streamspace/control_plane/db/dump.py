"""A logical copy of the database: every table's rows as JSON lines plus the Alembic revision,
read in one snapshot (REPEATABLE READ on PostgreSQL, one read transaction on SQLite), so a
backup is taken online and can be loaded into either engine. The archive around it belongs to
streamspace.backup; loading it back to load.py."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from streamspace.control_plane.db.engine import explicit_transactions
from streamspace.control_plane.db.portable import Kind, column_kind, encode
from streamspace.errors import NotFound

VERSION_TABLE = "alembic_version"
# Who is signed in, which replicas are alive and who holds a singleton lease describe the
# processes of the old installation, not its data: a restored installation starts without them
# (users sign in again).
RUNTIME_TABLES = frozenset({"login_sessions", "replicas", "leases"})
_BATCH = 1000


class Progress(Protocol):
    """Where long steps report how far they are (the CLI shows a progress bar)."""

    def step(self, description: str, *, total: int | None, unit: str) -> None: ...

    def advance(self, amount: int) -> None: ...


@dataclass(frozen=True)
class TableDump:
    name: str
    columns: dict[str, Kind]
    rows: int


@dataclass(frozen=True)
class DatabaseDump:
    dialect: str
    revision: str
    tables: list[TableDump]  # parents before children: the order a restore loads them in


def table_file(directory: Path, table: str) -> Path:
    return directory / f"{table}.jsonl"


async def dump_database(
    engine: AsyncEngine, *, directory: Path, progress: Progress
) -> DatabaseDump:
    """Write `<table>.jsonl` for every table into `directory`, all read in one snapshot."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    async with explicit_transactions(engine).connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        async with conn.begin():
            revision, tables = await conn.run_sync(_schema)
            dumped = [
                await _dump_table(conn, table, directory=directory, progress=progress)
                for table in tables
            ]
    return DatabaseDump(dialect=engine.dialect.name, revision=revision, tables=dumped)


def _schema(conn: Connection) -> tuple[str, list[sa.Table]]:
    metadata = sa.MetaData()
    metadata.reflect(conn)
    if VERSION_TABLE not in metadata.tables:
        raise NotFound(f"no StreamSpace database at {conn.engine.url!r}: nothing to back up")
    revision = conn.execute(sa.select(metadata.tables[VERSION_TABLE].c.version_num)).scalar()
    if revision is None:
        raise NotFound(f"the database at {conn.engine.url!r} has no schema revision")
    skipped = RUNTIME_TABLES | {VERSION_TABLE}
    return revision, [t for t in metadata.sorted_tables if t.name not in skipped]


async def _dump_table(
    conn: AsyncConnection, table: sa.Table, *, directory: Path, progress: Progress
) -> TableDump:
    kinds: dict[str, Kind] = {c.name: column_kind(c.type) for c in table.columns}
    total = (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
    progress.step(f"table {table.name}", total=total, unit="rows")
    order = list(table.primary_key.columns) or list(table.columns)
    rows = 0
    result = await conn.stream(sa.select(table).order_by(*order))
    with table_file(directory, table.name).open("w", encoding="utf-8") as out:
        async for batch in result.mappings().partitions(_BATCH):
            out.writelines(_line(row, kinds) for row in batch)
            rows += len(batch)
            progress.advance(len(batch))
    return TableDump(name=table.name, columns=kinds, rows=rows)


def _line(row: Any, kinds: dict[str, Kind]) -> str:
    encoded = {name: encode(row[name], kind) for name, kind in kinds.items()}
    return json.dumps(encoded, ensure_ascii=False, separators=(",", ":")) + "\n"
