"""users.auth_source, external_subject, email, display_name: users from OpenID Connect and LDAP

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: on SQLite a batch would copy `users` into a new table and
    # drop the old one, which the foreign keys of sessions and logins pointing at it refuse.
    # Every existing user is a local one (a password hash of their own).
    op.add_column(
        "users",
        sa.Column("auth_source", sa.String(16), nullable=False, server_default="local"),
    )
    op.add_column("users", sa.Column("external_subject", sa.String(255), nullable=True))
    op.add_column("users", sa.Column("email", sa.String(255), nullable=True))
    op.add_column("users", sa.Column("display_name", sa.String(255), nullable=True))
    # One user per identity at its source (the provider's `sub`, the directory's DN). Local
    # users have no subject: NULLs never collide, on SQLite as on PostgreSQL.
    op.create_index(
        "ix_users_external_identity", "users", ["auth_source", "external_subject"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_users_external_identity", table_name="users")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("display_name")
        batch_op.drop_column("email")
        batch_op.drop_column("external_subject")
        batch_op.drop_column("auth_source")
