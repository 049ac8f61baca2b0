"""messages and conversation events: the conversation's ON DELETE CASCADE as one trigger (issue 16)

``messages.conversation_id`` and ``conversation_events.conversation_id`` lose their foreign keys; an
``AFTER DELETE`` statement trigger on ``conversations`` (``conversations_cascade``) deletes the
messages and events of the conversations a statement deleted, so deleting a contact, a channel or an
organization still removes them (and a message's attachments, whose key to ``messages`` stays).

Why: a foreign key checks every inserted row with a query of its own (``SELECT 1 FROM conversations
... FOR KEY SHARE``); at 10 M messages that was 4-5 ms of a 500-message batch for the messages and
5-6 ms for their ~950 events (``auto_explain`` with triggers, 10 M messages), an eighth of ingest's
server time. Every writer of these rows takes the conversation from a row it has just read and locked
(ingest locks the batch's conversations ``FOR UPDATE``, replies and sends lock theirs), which is what
makes the reference right; the check repeated it.
"""

from __future__ import annotations

from alembic import op

revision = "0015_conversation_cascade"
down_revision = "0014_partial_idempotency"

_TABLES = ("messages", "conversation_events")


def upgrade() -> None:
    for table in _TABLES:
        op.drop_constraint(op.f(f"fk_{table}_conversation_id_conversations"), table, type_="foreignkey")
    op.execute("""
        create function conversations_cascade() returns trigger language plpgsql as $$
        begin
            delete from messages where conversation_id in (select id from gone);
            delete from conversation_events where conversation_id in (select id from gone);
            return null;
        end $$""")
    op.execute("""
        create trigger conversations_cascade after delete on conversations
        referencing old table as gone for each statement execute function conversations_cascade()""")


def downgrade() -> None:
    op.execute("drop trigger conversations_cascade on conversations")
    op.execute("drop function conversations_cascade()")
    for table in _TABLES:
        op.execute(f"delete from {table} t where not exists (select 1 from conversations c where c.id = t.conversation_id)")
        op.create_foreign_key(op.f(f"fk_{table}_conversation_id_conversations"), table, "conversations",
                              ["conversation_id"], ["id"], ondelete="CASCADE")
