"""templates.egress: whether a template's sessions may reach the internet

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing templates keep the internet they had (browsers need it): egress on. A plain
    # ADD COLUMN, not a batch: on SQLite a batch would copy `templates`, which the sessions'
    # foreign key to it refuses (see 0003).
    op.add_column(
        "templates",
        sa.Column("egress", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_column("egress")
