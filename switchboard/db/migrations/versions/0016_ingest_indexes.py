"""fewer index writes per ingested message: a partial assignee index, a deferred body trigram index (issue 16)

* ``ix_conversations_assignee`` holds only assigned conversations (``where assigned_user_id is not
  null``). Every update of ``last_message_at`` is a non-HOT update that writes a new entry into every
  index of ``conversations``; most conversations have no assignee (all of them PENDING or COMPLETED),
  and every query of the index names an assignee (``assigned_user_id = ...``, which implies ``is not
  null``), so those entries were never read.
* ``ix_messages_body_trgm`` keeps GIN's fast update (the default) with a pending list of 64 MB instead
  of ``gin_pending_list_limit``'s 4 MB: the ingest worker only appends each message's trigrams to the
  list, and the list is merged into the index by the ``maintain-inbox`` flow every 30 s
  (``gin_clean_pending_list``) or by autovacuum, not by whichever insert crosses 4 MB. A search reads
  the pending list too, so a message is found as soon as it is committed.
"""

from __future__ import annotations

from alembic import op

revision = "0016_ingest_indexes"
down_revision = "0015_conversation_cascade"


def upgrade() -> None:
    op.drop_index("ix_conversations_assignee", table_name="conversations")
    op.execute("create index ix_conversations_assignee on conversations "
               "(assigned_user_id, status, last_message_at desc) where assigned_user_id is not null")
    op.execute("alter index ix_messages_body_trgm set (gin_pending_list_limit = 65536)")


def downgrade() -> None:
    op.execute("alter index ix_messages_body_trgm reset (gin_pending_list_limit)")
    op.drop_index("ix_conversations_assignee", table_name="conversations")
    op.execute("create index ix_conversations_assignee on conversations "
               "(assigned_user_id, status, last_message_at desc)")
