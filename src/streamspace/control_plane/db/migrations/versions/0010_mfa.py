"""TOTP second factor: mfa_factors and mfa_recovery_codes, and orgs.mfa_required

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing orgs do not require a second factor: nobody is locked out by the upgrade. A
    # plain ADD COLUMN, not a batch: on SQLite a batch would copy `orgs`, which the users'
    # foreign key to it refuses (see 0003).
    op.add_column(
        "orgs",
        sa.Column("mfa_required", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # One factor per user: its secret (encrypted), when it was confirmed (NULL while the
    # enrolment is pending), the last time step a code was accepted for (a code is never
    # accepted twice) and when a second step last succeeded (challenges issued before it are
    # spent).
    op.create_table(
        "mfa_factors",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
    )
    # One-time recovery codes, SHA-256 of each (they are random, 80 bits: no slow hash needed)
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_mfa_recovery_codes_user_id", "mfa_recovery_codes", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_mfa_recovery_codes_user_id", table_name="mfa_recovery_codes")
    op.drop_table("mfa_recovery_codes")
    op.drop_table("mfa_factors")
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.drop_column("mfa_required")
