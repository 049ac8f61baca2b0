"""message templates per channel; template messages in the outbox (issue 11)

- ``message_templates``: a channel's templates as the platform lists them (name, language, category,
  status, components with their ``{{n}}`` parameters and examples), synced; ``removed_at`` marks one
  the platform no longer lists.
- ``messages.template``: the Cloud API ``template`` object of an outbound template message.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_message_templates"
down_revision = "0003_rate_limit_check"


def upgrade() -> None:
    op.create_table(
        "message_templates",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("components", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name=op.f("fk_message_templates_channel_id_channels"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_message_templates_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint("channel_id", "name", "language", name=op.f("uq_message_templates_channel_id_name_language")),
    )
    op.create_index("ix_message_templates_org", "message_templates", ["organization_id", "channel_id"], unique=False)
    op.add_column("messages", sa.Column("template", postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "template")
    op.drop_index("ix_message_templates_org", table_name="message_templates")
    op.drop_table("message_templates")
