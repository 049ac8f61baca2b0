"""Email threading: what a reply needs from the conversation's last inbound mail.

Conversations are one per (channel, contact); an email contact is the sender's address. A reply we
send carries ``In-Reply-To`` (that mail's ``Message-ID``), ``References`` (its references and its id)
and ``Re: <its subject>``, so the customer's mail client threads it. Read by the sending workflow
through the connector cache (connectors never touch the database).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from switchboard.db.schema import Contact, Conversation, Message
from switchboard.domain.conversation import Direction
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class LastInboundMail:
    message_id: str
    references: tuple[str, ...]
    subject: str | None


def last_inbound_mail(uow: UnitOfWork, channel_id: int, address: str) -> LastInboundMail | None:
    """The last mail ``address`` sent to the email channel ``channel_id`` (None: they never wrote)."""
    row = uow.session.execute(
        select(Message.provider_message_id, Message.raw)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.channel_id == channel_id, Contact.provider_contact_id == address.lower(),
               Message.direction == Direction.INBOUND, Message.provider_message_id.is_not(None))
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    raw = row.raw if isinstance(row.raw, dict) else {}
    refs = raw.get("references")
    subject = raw.get("subject")
    return LastInboundMail(str(row.provider_message_id), tuple(str(r) for r in refs or () if isinstance(refs, list)),
                           str(subject) if subject else None)
