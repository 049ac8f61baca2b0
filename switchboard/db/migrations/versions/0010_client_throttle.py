"""failed sign-ins counted per client address as well (issue 14: password spraying across accounts)"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_client_throttle"
down_revision = "0009_channel_lifecycle"


def upgrade() -> None:
    op.create_table(
        "client_signin_attempts",
        sa.Column("client_address", sa.String(length=64), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_address", name=op.f("pk_client_signin_attempts")),
    )
    op.create_index(op.f("ix_client_signin_attempts_last_failed_at"), "client_signin_attempts",
                    ["last_failed_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_client_signin_attempts_last_failed_at"), table_name="client_signin_attempts")
    op.drop_table("client_signin_attempts")
