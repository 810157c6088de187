"""The engine-independent form of rows that backups carry: each column's kind, and its values
as JSON (datetimes in ISO 8601 UTC, bytes in base64, decimals as text). Knows values only;
which tables and in what order belong to dump.py and load.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa

Kind = Literal["plain", "json", "datetime", "bytes", "decimal"]
KINDS: frozenset[str] = frozenset({"plain", "json", "datetime", "bytes", "decimal"})


def column_kind(column_type: sa.types.TypeEngine[Any]) -> Kind:
    """How a column's values are written, from its (reflected) type."""
    if isinstance(column_type, sa.DateTime):
        return "datetime"
    if isinstance(column_type, sa.JSON):
        return "json"
    if isinstance(column_type, sa.LargeBinary):
        return "bytes"
    if isinstance(column_type, sa.Numeric) and not isinstance(column_type, sa.Float):
        return "decimal"
    return "plain"


def encode(value: Any, kind: Kind) -> Any:
    """A column value as JSON. Naive datetimes are UTC: SQLite keeps StreamSpace's UTC
    datetimes without their zone (records.UTCDateTime)."""
    if value is None or kind in ("plain", "json"):
        return value
    if kind == "datetime":
        stamp: datetime = value
        return (stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp).isoformat()
    if kind == "bytes":
        return base64.b64encode(value).decode("ascii")
    return str(value)


def decode(value: Any, kind: Kind, *, column_type: sa.types.TypeEngine[Any]) -> Any:
    """A JSON value back to what the target column takes. A column without a time zone (every
    SQLite datetime) gets naive UTC, as UTCDateTime would have written it."""
    if value is None or kind in ("plain", "json"):
        return value
    if kind == "datetime":
        stamp = datetime.fromisoformat(value).astimezone(UTC)
        keeps_zone = isinstance(column_type, sa.DateTime) and column_type.timezone
        return stamp if keeps_zone else stamp.replace(tzinfo=None)
    if kind == "bytes":
        return base64.b64decode(value)
    return Decimal(value)
