"""messages' idempotency key unique only where there is one (issue 16)

``uq_messages_organization_id_idempotency_key`` (a unique constraint on (organization_id,
idempotency_key)) becomes the partial unique index ``ix_messages_idempotency_key ... where
idempotency_key is not null``. Only messages written with a key (replies and sends through the API
or the app) have one; every inbound message paid an index entry for its NULL key (301 MB of the 10 M
message bench, a seventh of the index entries a message insert writes). The look-up by key
(``idempotency_key = :key``) implies ``is not null``, so it uses the partial index.
"""

from __future__ import annotations

from alembic import op

revision = "0014_partial_idempotency"
down_revision = "0013_ingest_rows"


def upgrade() -> None:
    op.create_index("ix_messages_idempotency_key", "messages", ["organization_id", "idempotency_key"],
                    unique=True, postgresql_where="idempotency_key is not null")
    op.drop_constraint(op.f("uq_messages_organization_id_idempotency_key"), "messages", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint(op.f("uq_messages_organization_id_idempotency_key"), "messages",
                                ["organization_id", "idempotency_key"])
    op.drop_index("ix_messages_idempotency_key", table_name="messages", postgresql_where="idempotency_key is not null")
