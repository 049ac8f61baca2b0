"""HTTP API keys, their daily usage and the idempotency record (issue 12)

- ``api_keys``: name, visible prefix, SHA-256 of the secret, scopes, optional channel restriction,
  expiry, revocation, last use, the per-minute rate-limit window (shared by every process).
- ``api_key_usage``: requests, messages sent and errors per key per UTC day.
- ``api_idempotency``: the first answer per (key, ``Idempotency-Key``) with the hash of its request.
- ``event_subscriptions``, ``event_deliveries``, ``event_delivery_attempts``: outgoing event webhooks
  (signed deliveries retried for 24 hours, each attempt logged with its answer).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_api_keys"
down_revision = "0011_sms_email"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("channel_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("rate_limit_per_minute", sa.Integer(), server_default="600", nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_requests", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("rate_limit_per_minute > 0", name=op.f("ck_api_keys_rate_limit_positive")),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"],
                                name=op.f("fk_api_keys_created_by_user_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_api_keys_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_index("ix_api_keys_org", "api_keys", ["organization_id", sa.text("id desc")], unique=False)
    op.create_table(
        "api_key_usage",
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("requests", sa.Integer(), server_default="0", nullable=False),
        sa.Column("messages_sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("errors", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], name=op.f("fk_api_key_usage_api_key_id_api_keys"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("api_key_id", "day", name=op.f("pk_api_key_usage")),
    )
    op.create_table(
        "api_idempotency",
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"],
                                name=op.f("fk_api_idempotency_api_key_id_api_keys"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("api_key_id", "idempotency_key", name=op.f("pk_api_idempotency")),
    )
    op.create_index("ix_api_idempotency_created", "api_idempotency", ["created_at"], unique=False)
    op.create_table(
        "event_subscriptions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("channel_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_delivery_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_event_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by_api_key_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status in ('active', 'paused')", name=op.f("ck_event_subscriptions_status")),
        sa.ForeignKeyConstraint(["created_by_api_key_id"], ["api_keys.id"],
                                name=op.f("fk_event_subscriptions_created_by_api_key_id_api_keys"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"],
                                name=op.f("fk_event_subscriptions_created_by_user_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_event_subscriptions_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_subscriptions")),
    )
    op.create_index("ix_event_subscriptions_org", "event_subscriptions", ["organization_id", "id"], unique=False)
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status in ('PENDING', 'DELIVERED', 'FAILED')", name=op.f("ck_event_deliveries_status")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_event_deliveries_organization_id_organizations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscription_id"], ["event_subscriptions.id"],
                                name=op.f("fk_event_deliveries_subscription_id_event_subscriptions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
        sa.UniqueConstraint("subscription_id", "event_id", name=op.f("uq_event_deliveries_subscription_id_event_id")),
    )
    op.create_index("ix_event_deliveries_due", "event_deliveries", ["next_attempt_at"], unique=False,
                    postgresql_where=sa.text("status = 'PENDING'"))
    op.create_index("ix_event_deliveries_subscription", "event_deliveries", ["subscription_id", sa.text("id desc")],
                    unique=False)
    op.create_table(
        "event_delivery_attempts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["event_deliveries.id"],
                                name=op.f("fk_event_delivery_attempts_delivery_id_event_deliveries"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_delivery_attempts")),
    )
    op.create_index(op.f("ix_event_delivery_attempts_delivery_id"), "event_delivery_attempts", ["delivery_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_event_delivery_attempts_delivery_id"), table_name="event_delivery_attempts")
    op.drop_table("event_delivery_attempts")
    op.drop_index("ix_event_deliveries_subscription", table_name="event_deliveries")
    op.drop_index("ix_event_deliveries_due", table_name="event_deliveries")
    op.drop_table("event_deliveries")
    op.drop_index("ix_event_subscriptions_org", table_name="event_subscriptions")
    op.drop_table("event_subscriptions")
    op.drop_index("ix_api_idempotency_created", table_name="api_idempotency")
    op.drop_table("api_idempotency")
    op.drop_table("api_key_usage")
    op.drop_index("ix_api_keys_org", table_name="api_keys")
    op.drop_table("api_keys")
