"""Alembic environment: always handed a live connection by streamspace.control_plane.db.migrate."""

from __future__ import annotations

from alembic import context

from streamspace.control_plane.db.records import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `streamspace db upgrade`, not the alembic CLI")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
