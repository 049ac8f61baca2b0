"""The system of record (SPEC §3) in SQLAlchemy 2.

Every tenant row carries `organization_id`; no query may cross organizations. Idempotency lives in
unique keys: a message is unique per (channel, provider message id) and per (organization, client
idempotency key); a contact per (organization, provider, provider contact id). Enumerations are
plain strings guarded by CHECK constraints so that migrations stay simple and readable.

Any change here must be followed by `python -m switchboard.db.regen` (see that module) so the Alembic
migration keeps agreeing with the models; `tests/integration/test_migrations.py` checks it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("admin", "manager", "agent")
USER_STATUSES = ("active", "disabled", "invited")
PROVIDERS = ("telegram", "whatsapp", "messenger", "instagram", "sandbox", "twilio", "email")
CHANNEL_STATUSES = ("active", "paused", "error", "removed")
CONVERSATION_STATUSES = ("PENDING", "ASSIGNED", "COMPLETED")
EVENT_TYPES = (
    "CREATED",
    "ACCEPTED",
    "RELEASED",
    "REASSIGNED",
    "COMPLETED",
    "REOPENED",
    "AGENT_DISCONNECTED",
    "MESSAGE_RECEIVED",
    "MESSAGE_SENT",
    "MESSAGE_DELIVERED",
    "MESSAGE_READ",
    "MESSAGE_FAILED",
    "MESSAGE_UNKNOWN",
    "MESSAGE_ERASED",
)
DIRECTIONS = ("INBOUND", "OUTBOUND")
AUTHOR_KINDS = ("customer", "agent", "bot", "system")
MESSAGE_STATUSES = ("PENDING", "SENT", "DELIVERED", "READ", "FAILED", "UNKNOWN")
PRESENCE_STATES = ("ONLINE", "AWAY", "OFFLINE")
API_SCOPES = ("messages:send", "messages:read", "conversations:read", "conversations:write", "contacts:read",
              "webhooks:manage")
EVENT_TYPES_OUT = ("message.received", "message.status", "conversation.assigned", "conversation.completed")
SUBSCRIPTION_STATUSES = ("active", "paused")
DELIVERY_STATUSES = ("PENDING", "DELIVERED", "FAILED")
WEBHOOK_STATUSES = ("RECEIVED", "PROCESSED", "IGNORED", "REJECTED", "FAILED")
SIGNAL_KINDS = ("read", "typing")
SIGNAL_STATUSES = ("PENDING", "SENT", "FAILED")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in ({', '.join(repr(v) for v in values)})"


def _trigram(table: str, column: str, pending_list_kb: int | None = None) -> Index:
    """GIN pg_trgm index: ``ILIKE '%term%'`` search without a scan (the migration creates pg_trgm).
    ``pending_list_kb``: the fast-update list's size before an insert merges it (PostgreSQL: 4 MB)."""
    with_ = {"gin_pending_list_limit": pending_list_kb} if pending_list_kb else {}
    return Index(f"ix_{table}_{column}_trgm", column, postgresql_using="gin",
                 postgresql_ops={column: "gin_trgm_ops"}, postgresql_with=with_)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    # {"mon": [["09:00", "17:00"]], "tue": [...], ...}; missing day = closed. Holidays: ["2026-12-25"].
    business_hours: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    sla_first_response_ms: Mapped[int] = mapped_column(BigInteger, server_default="300000")
    sla_resolution_ms: Mapped[int] = mapped_column(BigInteger, server_default="86400000")
    auto_assign: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # retention (the daily ``cleanup`` flow): processed webhook deliveries, rejected/failed ones (kept
    # longer for audit), pipeline run history, sent/failed read marks and typing indicators — in days
    retention_webhook_days: Mapped[int] = mapped_column(Integer, server_default="30")
    retention_webhook_failed_days: Mapped[int] = mapped_column(Integer, server_default="180")
    retention_runs_days: Mapped[int] = mapped_column(Integer, server_default="90")
    retention_signals_days: Mapped[int] = mapped_column(Integer, server_default="7")
    # the key of the keyed hashes that erased contacts and messages leave behind (tombstones)
    erasure_key: Mapped[Any] = mapped_column(UUID(as_uuid=False), server_default=text("gen_random_uuid()"))
    created_at: Mapped[datetime] = _now()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint(_in("status", USER_STATUSES), name="status"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    password_hash: Mapped[str | None] = mapped_column(Text)
    totp_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    max_concurrent: Mapped[int] = mapped_column(Integer, server_default="5")
    last_assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class SigninAttempt(Base):
    """Failed sign-ins per submitted address (normalised email), whether or not an account has it.

    Keyed by the address, not the user, so an unknown address is counted and locked exactly like a
    real one and the sign-in page cannot tell them apart (docs/security.md).
    """

    __tablename__ = "signin_attempts"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None]
    last_failed_at: Mapped[datetime] = mapped_column(index=True)


class ClientSigninAttempt(Base):
    """Failed sign-ins per client address, whatever the accounts tried (issue 14): a client spraying
    passwords across many addresses is slowed down, in Postgres so that every app replica shares it."""

    __tablename__ = "client_signin_attempts"
    client_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    blocked_until: Mapped[datetime | None]
    last_failed_at: Mapped[datetime] = mapped_column(index=True)


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(Text)
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class LoginSession(Base):
    """Server-side session; the browser only holds a random token whose SHA-256 is the key."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    user_agent: Mapped[str | None] = mapped_column(Text)


class Invite(Base):
    __tablename__ = "invites"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class Channel(Base):
    __tablename__ = "channels"
    __table_args__ = (
        CheckConstraint(_in("provider", PROVIDERS), name="provider"),
        CheckConstraint(_in("status", CHANNEL_STATUSES), name="status"),
        CheckConstraint("rate_limit_per_second > 0", name="rate_limit_positive"),
        UniqueConstraint("organization_id", "key"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))  # short stable name, e.g. "wa-main"
    provider: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    # provider account id: WhatsApp phone-number id, page id, IG account id, Telegram user id
    external_id: Mapped[str | None] = mapped_column(String(128))
    credentials_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    webhook_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    # sends per second, fractions allowed (0.5 = one every 2 s); never 0 or less
    rate_limit_per_second: Mapped[float] = mapped_column(Double, server_default="80")
    business_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # per-channel override
    # the last "test connection": when, and what the platform answered (ok or the error)
    checked_at: Mapped[datetime | None]
    check_result: Mapped[str | None] = mapped_column(Text)
    # when the access token expires, as the platform says (Meta debug_token); None: unknown or never
    credentials_expire_at: Mapped[datetime | None]
    # tell customers we read their messages (mark read / seen) and show typing while an agent writes
    send_read_receipts: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()


class ChannelSendRate(Base):
    """A channel's shared send pacing (GCRA): the theoretical arrival time of its next send. Every
    worker process takes its send slots here, in one UPDATE, so together they keep the channel's rate."""

    __tablename__ = "channel_send_rate"
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    tat: Mapped[datetime]


class ChannelPermission(Base):
    __tablename__ = "channel_permissions"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    can_view: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    can_send: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class Contact(Base):
    # fillfactor 85 (migration 0013): ingest rewrites last_seen_at on every sighting, as a HOT update
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("organization_id", "provider", "provider_contact_id"),
        CheckConstraint(_in("provider", PROVIDERS), name="provider"),
        *(_trigram("contacts", c) for c in ("display_name", "username", "phone", "provider_contact_id")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))
    provider_contact_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(300))
    username: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime] = _now()
    lead_stage: Mapped[str | None] = mapped_column(String(32))
    is_bot_suspended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel_id", "contact_id"),
        CheckConstraint(_in("status", CONVERSATION_STATUSES), name="status"),
        CheckConstraint("(status = 'ASSIGNED') = (assigned_user_id is not null)", name="assignee"),
        Index("ix_conversations_queue", "organization_id", "status", text("last_message_at desc"), text("id desc")),
        # only assigned conversations: each look-up names an assignee (migration 0016)
        Index("ix_conversations_assignee", "assigned_user_id", "status", text("last_message_at desc"),
              postgresql_where=text("assigned_user_id is not null")),
        Index("ix_conversations_org_recent", "organization_id", text("last_message_at desc"), text("id desc")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # no index of its own: uq (channel_id, contact_id) serves look-ups by channel (migration 0013)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), server_default="PENDING")
    assigned_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    unread_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_message_preview: Mapped[str | None] = mapped_column(String(200))
    last_message_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    cycle_number: Mapped[int] = mapped_column(Integer, server_default="1")
    cycle_started_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]  # of the current cycle
    awaiting_reply: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class ConversationEvent(Base):
    """Append-only audit trail of every state change; the warehouse computes metrics from it."""

    __tablename__ = "conversation_events"
    __table_args__ = (
        CheckConstraint(_in("type", EVENT_TYPES), name="type"),
        Index("ix_conversation_events_conversation", "conversation_id", "id"),
        Index("ix_conversation_events_org", "organization_id", "id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # the conversation's organization, copied (no foreign key: the conversation holds it, see 0013)
    organization_id: Mapped[int] = mapped_column(BigInteger)
    # no foreign key: the writer holds the conversation's row; its deletion deletes the events (trigger
    # conversations_cascade, migration 0015)
    conversation_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(24))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = _now()


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "provider_message_id"),
        # only messages written with a key (outbound, API): inbound rows pay no entry (migration 0014)
        Index("ix_messages_idempotency_key", "organization_id", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key is not null")),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        CheckConstraint(_in("author_kind", AUTHOR_KINDS), name="author_kind"),
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        Index("ix_messages_thread", "conversation_id", text("sent_at desc"), text("id desc")),
        Index(
            "ix_messages_outbox",
            "next_attempt_at",
            postgresql_where=text("status = 'PENDING' and direction = 'OUTBOUND'"),
        ),
        Index("ix_messages_org_id", "organization_id", "id"),
        # the rare rows admins look for, newest first (Channels & health, Outbox filters; migration 0017)
        Index("ix_messages_dead_letter", "organization_id", "id", postgresql_where=text("is_dead_letter")),
        Index("ix_messages_outbound_trouble", "organization_id", "id",
              postgresql_where=text("direction = 'OUTBOUND' and status in ('FAILED', 'UNKNOWN')")),
        # 64 MB of pending trigrams, merged by maintain-inbox rather than by an ingest batch (0016)
        _trigram("messages", "body", pending_list_kb=65536),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # the conversation's organization and channel, copied (no foreign keys: the conversation holds them
    # and its deletion removes the message; the checks were a third of ingest's server time, 0013)
    organization_id: Mapped[int] = mapped_column(BigInteger)
    # no foreign key either: the writer holds the conversation's row (ingest locks it) and the trigger
    # conversations_cascade deletes a deleted conversation's messages (migration 0015)
    conversation_id: Mapped[int] = mapped_column(BigInteger)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(8))
    author_kind: Mapped[str] = mapped_column(String(16))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(32), server_default="text")
    provider_message_id: Mapped[str | None] = mapped_column(String(256))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    reply_to_provider_message_id: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    is_edited: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_deleted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    sent_at: Mapped[datetime]  # when the customer sent it / when the agent wrote it
    status_updated_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None]  # when due; while claimed, when the claim's lease ends
    # the fencing token of the latest claim: each claim increments it, and a worker records its
    # result only while the message still carries the token it claimed it with
    lease_token: Mapped[int] = mapped_column(Integer, server_default="0")
    is_dead_letter: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # an outbound template message: the Cloud API ``template`` object (name, language, components with
    # their parameters); ``body`` holds the rendered preview
    template: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()


class MessageTemplate(Base):
    """A channel's message template as the platform lists it (WhatsApp ``message_templates``), synced."""

    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint("channel_id", "name", "language"),
        Index("ix_message_templates_org", "organization_id", "channel_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))  # APPROVED, PENDING, REJECTED, PAUSED, DISABLED
    # the platform's components verbatim: HEADER/BODY/FOOTER/BUTTONS with {{n}} and their examples
    components: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    removed_at: Mapped[datetime | None]  # no longer listed by the platform (kept for old messages)
    synced_at: Mapped[datetime]
    created_at: Mapped[datetime] = _now()


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # image, video, audio, document, sticker, location...
    mime_type: Mapped[str | None] = mapped_column(String(128))
    file_name: Mapped[str | None] = mapped_column(String(300))
    provider_media_id: Mapped[str | None] = mapped_column(String(256))
    url: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    local_path: Mapped[str | None] = mapped_column(Text, index=True)  # (which files are still used)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # a media worker's lease on the download (claimed in a short transaction; expires if it crashes)
    download_claimed_until: Mapped[datetime | None]


class SavedReply(Base):
    """An organization's canned response: a short code, a title and a body with ``{name}``-style
    placeholders filled from the contact when it is inserted into a reply."""

    __tablename__ = "saved_replies"
    __table_args__ = (UniqueConstraint("organization_id", "code"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class PlatformSignal(Base):
    """A read mark or typing indicator to send to the platform, queued by the inbox and sent by a flow
    (the page never waits for the platform); failures are kept here for an admin, never shown to agents."""

    __tablename__ = "platform_signals"
    __table_args__ = (
        CheckConstraint(_in("kind", SIGNAL_KINDS), name="kind"),
        CheckConstraint(_in("status", SIGNAL_STATUSES), name="status"),
        Index("ix_platform_signals_pending", "id", postgresql_where=text("status = 'PENDING'")),
        Index("ix_platform_signals_read_once", "conversation_id", "provider_message_id", unique=True,
              postgresql_where=text("kind = 'read'")),
        Index("ix_platform_signals_conversation", "conversation_id", text("id desc")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    recipient_id: Mapped[str] = mapped_column(String(128))
    provider_message_id: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    done_at: Mapped[datetime | None]


class AgentPresence(Base):
    """Presence of one agent (one row per user): the latest heartbeat and state."""

    __tablename__ = "agent_sessions"
    __table_args__ = (CheckConstraint(_in("state", PRESENCE_STATES), name="state"),)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    last_heartbeat_at: Mapped[datetime]
    offline_since: Mapped[datetime | None]


class PresenceEvent(Base):
    """Append-only presence changes and heartbeats: online minutes are computed from these."""

    __tablename__ = "presence_events"
    __table_args__ = (
        CheckConstraint(_in("state", PRESENCE_STATES), name="state"),
        Index("ix_presence_events_org", "organization_id", "id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime]


class WebhookEvent(Base):
    """A webhook delivery exactly as received, stored before the platform gets its 200."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint(_in("status", WEBHOOK_STATUSES), name="status"),
        Index("ix_webhook_events_pending", "id", postgresql_where=text("status = 'RECEIVED'")),
        Index("ix_webhook_events_channel", "channel_id", text("id desc")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(16))
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = _now()
    status: Mapped[str] = mapped_column(String(16), server_default="RECEIVED")
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    processed_at: Mapped[datetime | None]


class SyncCursor(Base):
    """Incremental cursor per channel and scope (e.g. a Telegram chat); stored with its batch."""

    __tablename__ = "sync_cursors"
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    cursor: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = _now()


class ErasedContact(Base):
    """Tombstone of an erased contact: the keyed hash of its provider contact id. Ingest drops the
    messages of that sender sent up to ``erased_at`` (a replayed webhook, a history sync); a message
    sent later is a new contact (the person wrote again)."""

    __tablename__ = "erased_contacts"
    __table_args__ = (CheckConstraint(_in("provider", PROVIDERS), name="provider"),)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    contact_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime]


class ErasedMessage(Base):
    """Tombstone of an erased message: the keyed hash of its provider message id on its channel; ingest
    never stores that message again (a replayed delivery cannot resurrect its content)."""

    __tablename__ = "erased_messages"
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    message_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime]


class SyncProgress(Base):
    """How far a channel's history sync got (Telegram dialogs, Messenger/Instagram history): written
    with each batch, shown on Channels & health. One row per channel and job, overwritten by each run."""

    __tablename__ = "sync_progress"
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    chats_done: Mapped[int] = mapped_column(Integer, server_default="0")
    chats_total: Mapped[int | None] = mapped_column(Integer)  # None: not known
    messages_done: Mapped[int] = mapped_column(Integer, server_default="0")
    messages_total: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_org", "organization_id", text("id desc")),
        # the audit page's category and person filters, newest first (migration 0018)
        Index("ix_audit_log_org_action", "organization_id", "action", "id",
              postgresql_ops={"action": "text_pattern_ops"}),
        Index("ix_audit_log_org_actor", "organization_id", "actor_user_id", "id"),
        Index("ix_audit_log_org_time", "organization_id", "occurred_at"),  # the "up to" date (0019)
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    occurred_at: Mapped[datetime] = _now()


class ApiKey(Base):
    """A key of the HTTP API: only the SHA-256 of the secret is kept; ``prefix`` is what people see."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index("ix_api_keys_org", "organization_id", text("id desc")),
        CheckConstraint("rate_limit_per_minute > 0", name="rate_limit_positive"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32))  # "sb_live_ab12cd": shown in lists and logs
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the whole key
    scopes: Mapped[list[str]] = mapped_column(JSONB)
    channel_ids: Mapped[list[int] | None] = mapped_column(JSONB)  # None: every channel of the organization
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, server_default="600")
    # the current rate-limit window (one minute) and its request count: shared by every process
    window_start: Mapped[datetime | None]
    window_requests: Mapped[int] = mapped_column(Integer, server_default="0")
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()


class ApiKeyUsage(Base):
    """Requests, messages sent and errors of one key on one (UTC) day."""

    __tablename__ = "api_key_usage"
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, server_default="0")
    messages_sent: Mapped[int] = mapped_column(Integer, server_default="0")
    errors: Mapped[int] = mapped_column(Integer, server_default="0")


class ApiIdempotency(Base):
    """The first answer to a request with an ``Idempotency-Key``: a retry gets it again; another body
    with the same key is refused (the SHA-256 of the request tells them apart)."""

    __tablename__ = "api_idempotency"
    __table_args__ = (Index("ix_api_idempotency_created", "created_at"),)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()


class EventSubscription(Base):
    """An outgoing event webhook: a URL of the organization's own system and the events it wants.
    ``secret_enc``: the signing secret, AES-GCM encrypted (associated data ``event-webhook:{id}``)."""

    __tablename__ = "event_subscriptions"
    __table_args__ = (
        CheckConstraint(_in("status", SUBSCRIPTION_STATUSES), name="status"),
        Index("ix_event_subscriptions_org", "organization_id", "id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSONB)
    channel_ids: Mapped[list[int] | None] = mapped_column(JSONB)  # from a channel-restricted key; None: all
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    failing_since: Mapped[datetime | None]  # the first failure since the last success
    paused_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_delivery_at: Mapped[datetime | None]
    # events up to this id were turned into deliveries and are older than the rescan window
    cursor_event_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()


class EventDelivery(Base):
    """One event for one subscription: retried with backoff for 24 hours, at least once, stable id."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index("ix_event_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'PENDING'")),
        Index("ix_event_deliveries_subscription", "subscription_id", text("id desc")),
        # the Event webhooks page counts each subscription's PENDING / FAILED deliveries (migration 0017)
        Index("ix_event_deliveries_open", "subscription_id", postgresql_where=text("status in ('PENDING', 'FAILED')")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("event_subscriptions.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    delivered_at: Mapped[datetime | None]


class EventDeliveryAttempt(Base):
    """Each POST of a delivery with the answer (status, first 2 KB of the body) or the error."""

    __tablename__ = "event_delivery_attempts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("event_deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)


class PipelineRun(Base):
    """Last runs of each flow, for `GET /health` and the admin view."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (
        Index("ix_pipeline_runs_name", "name", text("id desc")),
        Index("ix_pipeline_runs_org", "organization_id", text("id desc")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    # the organization a run concerns (one channel's sync); None: an installation-wide run
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)


metadata = Base.metadata
