"""failed sign-ins counted per submitted address (issue 18)

Moves ``users.failed_attempts`` / ``users.locked_until`` into ``signin_attempts`` keyed by the
normalised email, so an address without an account is counted and locked like one with an account.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_signin_attempts"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "signin_attempts",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_signin_attempts")),
    )
    op.create_index(op.f("ix_signin_attempts_last_failed_at"), "signin_attempts", ["last_failed_at"],
                    unique=False)
    op.execute(
        "insert into signin_attempts (email, failed_attempts, locked_until, last_failed_at) "
        "select lower(email), failed_attempts, locked_until, coalesce(locked_until, now()) from users "
        "where failed_attempts > 0 or locked_until is not null"
    )
    op.drop_column("users", "locked_until")
    op.drop_column("users", "failed_attempts")


def downgrade() -> None:
    op.add_column("users", sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("users", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "update users set failed_attempts = a.failed_attempts, locked_until = a.locked_until "
        "from signin_attempts a where a.email = lower(users.email)"
    )
    op.drop_index(op.f("ix_signin_attempts_last_failed_at"), table_name="signin_attempts")
    op.drop_table("signin_attempts")
