"""retention and erasure (issue 14) — chained after 0008_api_keys once main was merged into wp-retain

- ``organizations.retention_*``: days the daily ``cleanup`` flow keeps processed webhook deliveries,
  rejected/failed ones, pipeline run history and sent/failed platform signals;
  ``organizations.erasure_key``: the key of the keyed hashes kept by erasure tombstones.
- ``erased_contacts`` / ``erased_messages``: tombstones of erased contacts and their messages (keyed
  hashes only), read by ingest so that a replayed delivery cannot resurrect erased content.
- ``sync_progress``: how far each channel's history sync got (Channels & health).
- ``ix_attachments_local_path``: which media files are still referenced (cleanup, erasure).
- conversation events may be ``MESSAGE_ERASED`` (the warehouse re-extracts the erased message).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_retention"
down_revision = "0008_api_keys"

_OLD_EVENTS = ("CREATED", "ACCEPTED", "RELEASED", "REASSIGNED", "COMPLETED", "REOPENED", "AGENT_DISCONNECTED",
               "MESSAGE_RECEIVED", "MESSAGE_SENT", "MESSAGE_DELIVERED", "MESSAGE_READ", "MESSAGE_FAILED",
               "MESSAGE_UNKNOWN")
_PROVIDERS = ("telegram", "whatsapp", "messenger", "instagram", "sandbox", "twilio", "email")
_RETENTION = {"retention_webhook_days": "30", "retention_webhook_failed_days": "180",
              "retention_runs_days": "90", "retention_signals_days": "7"}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in ({', '.join(repr(v) for v in values)})"


def _event_check(events: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_conversation_events_type"), "conversation_events", type_="check")
    op.create_check_constraint(op.f("ck_conversation_events_type"), "conversation_events", _in("type", events))


def upgrade() -> None:
    for column, default in _RETENTION.items():
        op.add_column("organizations", sa.Column(column, sa.Integer(), server_default=default, nullable=False))
    op.add_column("organizations", sa.Column("erasure_key", postgresql.UUID(as_uuid=False),
                                             server_default=sa.text("gen_random_uuid()"), nullable=False))
    _event_check((*_OLD_EVENTS, "MESSAGE_ERASED"))
    op.create_index(op.f("ix_attachments_local_path"), "attachments", ["local_path"], unique=False)
    op.create_table(
        "erased_contacts",
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("contact_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("provider", _PROVIDERS), name=op.f("ck_erased_contacts_provider")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_erased_contacts_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organization_id", "provider", "contact_hash", name=op.f("pk_erased_contacts")),
    )
    op.create_table(
        "erased_messages",
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("message_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name=op.f("fk_erased_messages_channel_id_channels"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("channel_id", "message_hash", name=op.f("pk_erased_messages")),
    )
    op.create_table(
        "sync_progress",
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("chats_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("chats_total", sa.Integer(), nullable=True),
        sa.Column("messages_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("messages_total", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name=op.f("fk_sync_progress_channel_id_channels"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("channel_id", "job", name=op.f("pk_sync_progress")),
    )


def downgrade() -> None:
    op.drop_table("sync_progress")
    op.drop_table("erased_messages")
    op.drop_table("erased_contacts")
    op.execute("delete from conversation_events where type = 'MESSAGE_ERASED'")
    _event_check(_OLD_EVENTS)
    op.drop_index(op.f("ix_attachments_local_path"), table_name="attachments")
    op.drop_column("organizations", "erasure_key")
    for column in reversed(list(_RETENTION)):
        op.drop_column("organizations", column)
