"""cheaper rows for inbound ingest (issue 16)

- ``messages.organization_id``, ``messages.channel_id`` and ``conversation_events.organization_id`` lose
  their foreign keys: each only repeats what the row's conversation already says (ingest and every
  writer copy them from the conversation, ``conversations`` keeps the keys and its ``ON DELETE
  CASCADE`` still removes the rows with their conversation), and the checks were a quarter to a third
  of the time of a batch's messages insert and two thirds of its events insert (EXPLAIN ANALYZE of
  500 rows, session 3). The columns and their indexes stay.
- ``ix_conversations_channel_id`` goes: the unique key (channel_id, contact_id) serves every look-up by
  channel, and each new conversation or non-HOT update of one paid for a seventh index entry.
- ``contacts`` gets ``fillfactor 85``: a sighting rewrites the contact's row (``last_seen_at``), and
  with room left in its page the new version is a HOT update (no entry in the five indexes, four of
  them trigram).
"""

from __future__ import annotations

from alembic import op

revision = "0013_ingest_rows"
down_revision = "0012_retention"

_DROPPED = (
    ("messages", "organization_id", "organizations"),
    ("messages", "channel_id", "channels"),
    ("conversation_events", "organization_id", "organizations"),
)


def upgrade() -> None:
    for table, column, referred in _DROPPED:
        op.drop_constraint(op.f(f"fk_{table}_{column}_{referred}"), table, type_="foreignkey")
    op.drop_index(op.f("ix_conversations_channel_id"), table_name="conversations")
    op.execute("alter table contacts set (fillfactor = 85)")


def downgrade() -> None:
    op.execute("alter table contacts reset (fillfactor)")
    op.create_index(op.f("ix_conversations_channel_id"), "conversations", ["channel_id"], unique=False)
    for table, column, referred in _DROPPED:
        op.create_foreign_key(op.f(f"fk_{table}_{column}_{referred}"), table, referred, [column], ["id"],
                              ondelete="CASCADE")
