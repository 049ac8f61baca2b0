"""exactly-once sends (issue 11): fencing tokens, unknown outcomes, a rate limit shared by every worker

- ``messages.lease_token``: incremented by every claim of the outbox; a worker records its send's
  result only while the message still carries the token it claimed it with.
- ``messages.status`` may be ``UNKNOWN`` (a timeout after the request may have reached the platform:
  "may have been sent"); conversation events may be ``MESSAGE_UNKNOWN``.
- ``channel_send_rate``: each channel's theoretical arrival time of its next send (GCRA), taken by
  every worker process in one UPDATE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_send_fencing"
down_revision = "0006_thread_features"

_OLD_STATUSES = ("PENDING", "SENT", "DELIVERED", "READ", "FAILED")
_OLD_EVENTS = ("CREATED", "ACCEPTED", "RELEASED", "REASSIGNED", "COMPLETED", "REOPENED", "AGENT_DISCONNECTED",
               "MESSAGE_RECEIVED", "MESSAGE_SENT", "MESSAGE_DELIVERED", "MESSAGE_READ", "MESSAGE_FAILED")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in ({', '.join(repr(v) for v in values)})"


def _checks(statuses: tuple[str, ...], events: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_messages_status"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_status"), "messages", _in("status", statuses))
    op.drop_constraint(op.f("ck_conversation_events_type"), "conversation_events", type_="check")
    op.create_check_constraint(op.f("ck_conversation_events_type"), "conversation_events", _in("type", events))


def upgrade() -> None:
    op.add_column("messages", sa.Column("lease_token", sa.Integer(), server_default="0", nullable=False))
    _checks((*_OLD_STATUSES, "UNKNOWN"), (*_OLD_EVENTS, "MESSAGE_UNKNOWN"))
    op.create_table(
        "channel_send_rate",
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("tat", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name=op.f("fk_channel_send_rate_channel_id_channels"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_channel_send_rate")),
    )


def downgrade() -> None:
    op.drop_table("channel_send_rate")
    op.execute("update messages set status = 'PENDING', next_attempt_at = now() where status = 'UNKNOWN'")
    op.execute("delete from conversation_events where type = 'MESSAGE_UNKNOWN'")
    _checks(_OLD_STATUSES, _OLD_EVENTS)
    op.drop_column("messages", "lease_token")
