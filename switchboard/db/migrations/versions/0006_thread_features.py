"""saved replies; read marks and typing indicators queued for the platform (issue 11)

- ``saved_replies``: an organization's canned responses (short code unique per organization).
- ``platform_signals``: read marks / typing indicators the inbox queues and a flow sends; a read mark
  is queued once per customer message.
- ``channels.send_read_receipts``: whether the channel marks customers' messages read and shows typing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_thread_features"
down_revision = "0010_client_throttle"


def upgrade() -> None:
    op.add_column("channels", sa.Column("send_read_receipts", sa.Boolean(), server_default=sa.text("true"),
                                        nullable=False))
    op.create_table(
        "saved_replies",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"],
                                name=op.f("fk_saved_replies_created_by_user_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_saved_replies_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_replies")),
        sa.UniqueConstraint("organization_id", "code", name=op.f("uq_saved_replies_organization_id_code")),
    )
    op.create_table(
        "platform_signals",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("recipient_id", sa.String(length=128), nullable=False),
        sa.Column("provider_message_id", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind in ('read', 'typing')", name=op.f("ck_platform_signals_kind")),
        sa.CheckConstraint("status in ('PENDING', 'SENT', 'FAILED')", name=op.f("ck_platform_signals_status")),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name=op.f("fk_platform_signals_channel_id_channels"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_platform_signals_conversation_id_conversations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_platform_signals_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_signals")),
    )
    op.create_index("ix_platform_signals_pending", "platform_signals", ["id"], unique=False,
                    postgresql_where=sa.text("status = 'PENDING'"))
    op.create_index("ix_platform_signals_read_once", "platform_signals", ["conversation_id", "provider_message_id"],
                    unique=True, postgresql_where=sa.text("kind = 'read'"))
    op.create_index("ix_platform_signals_conversation", "platform_signals", ["conversation_id", sa.text("id desc")],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_platform_signals_conversation", table_name="platform_signals")
    op.drop_index("ix_platform_signals_read_once", table_name="platform_signals")
    op.drop_index("ix_platform_signals_pending", table_name="platform_signals")
    op.drop_table("platform_signals")
    op.drop_table("saved_replies")
    op.drop_column("channels", "send_read_receipts")
