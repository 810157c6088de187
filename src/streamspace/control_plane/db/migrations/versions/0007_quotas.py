"""Quotas: limits on orgs and users, and the CPU and memory each session is counted for

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_LIMITS = ("quota_sessions", "quota_cpu_millicores", "quota_memory_mb")


def upgrade() -> None:
    # NULL = no limit of its own (the QUOTA_DEFAULT_* setting applies, unset = unlimited): an
    # installation upgrading keeps every create it allowed before. Plain ADD COLUMN, not a
    # batch: on SQLite a batch would copy `users`, `orgs` and `sessions`, which the foreign
    # keys pointing at them refuse (see 0003).
    for table in ("orgs", "users"):
        for name in _LIMITS:
            op.add_column(table, sa.Column(name, sa.Integer(), nullable=True))
    # What a quota counted a session for when it was created, so that editing its template
    # later does not change the usage of sessions already running. Sessions created before
    # this revision have NULL and count as QUOTA_SESSION_DEFAULT_CPU / _MEMORY_MB.
    op.add_column("sessions", sa.Column("cpu_millicores", sa.Integer(), nullable=True))
    op.add_column("sessions", sa.Column("memory_mb", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("memory_mb")
        batch_op.drop_column("cpu_millicores")
    for table in ("users", "orgs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in reversed(_LIMITS):
                batch_op.drop_column(name)
