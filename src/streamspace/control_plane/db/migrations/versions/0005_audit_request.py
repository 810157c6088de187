"""audit_events.address and .request_id: which client and which request did it; created_at indexed

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Events written before this revision keep their rows; they read as "" (unknown) here,
    # and a login's address stays in its detail as before.
    op.add_column(
        "audit_events",
        sa.Column("address", sa.String(64), nullable=False, server_default=""),
    )
    op.add_column(
        "audit_events",
        sa.Column("request_id", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_created_at", table_name="audit_events")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("request_id")
        batch_op.drop_column("address")
