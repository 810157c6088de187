"""templates.pull: when an agent pulls a template's image

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: existing templates keep the platform's default behaviour.
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pull", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_column("pull")
