"""users.platform_admin and users.removed_at: platform admins apart from org admins; removed users

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: on SQLite a batch would copy `users` into a new table and
    # drop the old one, which the foreign keys of sessions and logins pointing at it refuse.
    op.add_column(
        "users",
        sa.Column("platform_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("users", sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
    # Before this revision every admin ran the whole platform (agents, replicas): they keep it.
    op.execute(
        sa.text("UPDATE users SET platform_admin = :yes WHERE role = 'admin'").bindparams(yes=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("removed_at")
        batch_op.drop_column("platform_admin")
