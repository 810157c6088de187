"""Loading a dump (dump.py) into a database, all in one transaction: the target must hold no
StreamSpace data unless told to replace it; it is built at the dump's schema revision, loaded
parents first, then upgraded to this StreamSpace's head. A failure leaves it as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from streamspace.control_plane.db import migrate
from streamspace.control_plane.db.dump import (
    VERSION_TABLE,
    DatabaseDump,
    Progress,
    TableDump,
    table_file,
)
from streamspace.control_plane.db.engine import explicit_transactions
from streamspace.control_plane.db.portable import decode
from streamspace.control_plane.db.records import Base
from streamspace.errors import Conflict, ValidationFailed

_BATCH = 1000
_OWNED = frozenset({*Base.metadata.tables, VERSION_TABLE})


async def rows_held(engine: AsyncEngine) -> dict[str, int]:
    """Rows in each StreamSpace table of the target that has any (empty: free to restore into)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_rows_held)


async def load_database(
    engine: AsyncEngine,
    *,
    directory: Path,
    dump: DatabaseDump,
    replace: bool,
    progress: Progress,
) -> None:
    if not migrate.knows_revision(dump.revision):
        raise ValidationFailed(
            f"the backup's database is at schema revision {dump.revision}, which this "
            f"StreamSpace does not know (its newest is {migrate.head_revision()}): restore it "
            "with the version that made it, or a newer one"
        )
    async with explicit_transactions(engine).begin() as conn:
        if conn.dialect.name == "postgresql":  # no replica migrates meanwhile (migrate.upgrade)
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(815243)"))
        await conn.run_sync(
            lambda sync: _load(
                sync, directory=directory, dump=dump, replace=replace, progress=progress
            )
        )


def _load(
    conn: Connection, *, directory: Path, dump: DatabaseDump, replace: bool, progress: Progress
) -> None:
    if not replace:
        refuse_non_empty(_rows_held(conn))
    _drop_owned(conn)
    migrate.upgrade_on(conn, dump.revision)
    metadata = sa.MetaData()
    metadata.reflect(conn)
    wanted = {t.name: t for t in dump.tables}
    for table in metadata.sorted_tables:
        if table.name in wanted:
            _load_table(conn, table, wanted.pop(table.name), directory=directory, progress=progress)
    if wanted:
        raise ValidationFailed(
            f"the backup has tables that schema revision {dump.revision} lacks: {sorted(wanted)}"
        )
    if conn.dialect.name == "postgresql":
        _restart_sequences(conn, metadata)
    migrate.upgrade_on(conn, "head")


def refuse_non_empty(held: dict[str, int]) -> None:
    if held:
        counts = ", ".join(f"{name}: {n}" for name, n in sorted(held.items()))
        raise Conflict(
            f"the target database already holds StreamSpace data ({counts}); restore into an "
            "empty database, or pass --replace to drop what it holds",
            code="database_not_empty",
        )


def _rows_held(conn: Connection) -> dict[str, int]:
    present = set(sa.inspect(conn).get_table_names()) & (_OWNED - {VERSION_TABLE})
    counts = {
        name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
        for name in sorted(present)
    }
    return {name: n for name, n in counts.items() if n}


def _drop_owned(conn: Connection) -> None:
    """Drop StreamSpace's tables (empty, or --replace): the target is then rebuilt at the
    backup's revision, whatever revision it was at. Other tables are left alone."""
    present = sorted(set(sa.inspect(conn).get_table_names()) & _OWNED)
    if present:
        metadata = sa.MetaData()
        metadata.reflect(conn, only=present)
        metadata.drop_all(conn)


def _load_table(
    conn: Connection, table: sa.Table, dumped: TableDump, *, directory: Path, progress: Progress
) -> None:
    unknown = set(dumped.columns) - set(table.columns.keys())
    if unknown:
        raise ValidationFailed(
            f"the backup's table {table.name} has columns its schema revision lacks: "
            f"{sorted(unknown)}"
        )
    progress.step(f"table {table.name}", total=dumped.rows, unit="rows")
    loaded = 0
    for batch in _batches(table_file(directory, table.name), table, dumped):
        try:
            conn.execute(table.insert(), batch)
        except sa.exc.DBAPIError as exc:
            raise ValidationFailed(
                f"the backup's rows do not load into {table.name}: {exc.orig}"
            ) from exc
        loaded += len(batch)
        progress.advance(len(batch))
    if loaded != dumped.rows:
        raise ValidationFailed(
            f"the backup's table {table.name} has {loaded} rows where its manifest says "
            f"{dumped.rows}: the archive is damaged"
        )


def _batches(path: Path, table: sa.Table, dumped: TableDump) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
                batch.append(
                    {
                        name: decode(row[name], kind, column_type=table.c[name].type)
                        for name, kind in dumped.columns.items()
                    }
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValidationFailed(
                    f"{path.name} line {number} is not a row of {table.name} ({exc})"
                ) from exc
            if len(batch) == _BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _restart_sequences(conn: Connection, metadata: sa.MetaData) -> None:
    """Rows came with their ids: PostgreSQL's sequences must carry on after the highest one,
    or the next audit event would collide with a restored one."""
    for table in metadata.sorted_tables:
        key = list(table.primary_key.columns)
        if len(key) != 1 or not isinstance(key[0].type, sa.Integer):
            continue
        sequence = conn.execute(
            sa.select(sa.func.pg_get_serial_sequence(table.name, key[0].name))
        ).scalar()
        if sequence is not None:
            top = conn.execute(sa.select(sa.func.max(key[0]))).scalar() or 0
            conn.execute(sa.select(sa.func.setval(sequence, top + 1, False)))
