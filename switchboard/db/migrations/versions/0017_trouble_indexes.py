"""small partial indexes for the rare rows admins look for (dead letters, failed sends, open deliveries)

* ``ix_messages_dead_letter`` and ``ix_messages_outbound_trouble``: Channels & health lists the newest
  dead letters and the Outbox filters by FAILED, UNKNOWN or dead letter, newest first. With only
  ``ix_messages_org_id`` PostgreSQL walked the organization's messages backwards until it found enough
  of them — every message when there are few (1.3-4.7 s at 10 M messages). These hold only those rows.
* ``ix_event_deliveries_open``: the Event webhooks page counts each subscription's PENDING and FAILED
  deliveries; the index holds only those, not the 30 days of delivered ones.
"""

from __future__ import annotations

from alembic import op

revision = "0017_trouble_indexes"
down_revision = "0016_ingest_indexes"


def upgrade() -> None:
    op.execute("create index if not exists ix_messages_dead_letter on messages (organization_id, id) "
               "where is_dead_letter")
    op.execute("create index if not exists ix_messages_outbound_trouble on messages (organization_id, id) "
               "where direction = 'OUTBOUND' and status in ('FAILED', 'UNKNOWN')")
    op.execute("create index if not exists ix_event_deliveries_open on event_deliveries (subscription_id) "
               "where status in ('PENDING', 'FAILED')")


def downgrade() -> None:
    op.drop_index("ix_event_deliveries_open", table_name="event_deliveries")
    op.drop_index("ix_messages_outbound_trouble", table_name="messages")
    op.drop_index("ix_messages_dead_letter", table_name="messages")
