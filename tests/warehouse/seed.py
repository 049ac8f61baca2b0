"""Seed Postgres rows directly (SQLAlchemy Core) for warehouse tests: given rows → expected rows.

Mirrors what the inbox services write: messages plus their conversation events, lifecycle events with
actors, the conversation row's current state, presence events.
"""

from __future__ import annotations

import copy
import itertools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, update

from switchboard.db.schema import (
    Channel,
    Contact,
    Conversation,
    ConversationEvent,
    Message,
    Organization,
    PresenceEvent,
    User,
)


def T(value: str) -> datetime:
    """'2026-03-02 09:00' or with seconds / offset; naive means UTC."""
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Seed:
    _names = itertools.count()
    _con: Connection | None = None  # set on the view held_open() yields

    def __init__(self, engine: Engine, *, timezone: str = "UTC", business_hours: dict[str, Any] | None = None,
                 sla_first_response_ms: int = 300_000, sla_resolution_ms: int = 86_400_000,
                 name: str | None = None) -> None:
        self.engine = engine
        with engine.begin() as con:
            self.org_id = int(con.execute(insert(Organization).values(
                name=name or f"org-{next(self._names)}-{secrets.token_hex(3)}", timezone=timezone,
                business_hours=business_hours or {}, sla_first_response_ms=sla_first_response_ms,
                sla_resolution_ms=sla_resolution_ms).returning(Organization.id)).scalar_one())
        self._msg = itertools.count(1)
        self.state: dict[int, dict[str, Any]] = {}

    def _exec(self, stmt: Any) -> Any:
        if self._con is not None:
            return self._con.execute(stmt)
        with self.engine.begin() as con:
            return con.execute(stmt)

    @contextmanager
    def held_open(self, *, commit: bool = True) -> Iterator[Seed]:
        """A view of this seed whose writes run in one transaction that commits (or, with
        ``commit=False``, rolls back) when the block ends: its rows take their ids now but become
        visible only then (a late commit, out of id order)."""
        view = copy.copy(self)
        with self.engine.connect() as con:
            tx = con.begin()
            view._con = con
            try:
                yield view
            except BaseException:
                tx.rollback()
                raise
            if commit:
                tx.commit()
            else:
                tx.rollback()

    def channel(self, key: str = "wa", provider: str = "whatsapp",
                business_hours: dict[str, Any] | None = None) -> int:
        return int(self._exec(insert(Channel).values(
            organization_id=self.org_id, key=key, provider=provider, name=f"{provider} {key}",
            webhook_key=secrets.token_hex(8), business_hours=business_hours).returning(Channel.id)).scalar_one())

    def user(self, email: str, role: str = "agent") -> int:
        return int(self._exec(insert(User).values(
            organization_id=self.org_id, email=email, name=email.split("@")[0], role=role)
            .returning(User.id)).scalar_one())

    def conversation(self, channel_id: int, contact: str = "c1") -> int:
        contact_id = int(self._exec(insert(Contact).values(
            organization_id=self.org_id, provider="whatsapp", provider_contact_id=f"{contact}-{secrets.token_hex(3)}",
            display_name=contact).returning(Contact.id)).scalar_one())
        cid = int(self._exec(insert(Conversation).values(
            organization_id=self.org_id, channel_id=channel_id, contact_id=contact_id)
            .returning(Conversation.id)).scalar_one())
        self.state[cid] = {"channel_id": channel_id, "status": "NEW", "assigned": None, "cycle": 1}
        return cid

    def event(self, conv: int, type: str, at: datetime, actor: int | None = None,
              message_id: int | None = None, data: dict[str, Any] | None = None) -> None:
        self._exec(insert(ConversationEvent).values(
            organization_id=self.org_id, conversation_id=conv, type=type, occurred_at=at,
            actor_user_id=actor, message_id=message_id, data=data or {}))

    def _message(self, conv: int, at: datetime, direction: str, author_kind: str, author: int | None,
                 body: str, status: str) -> int:
        st = self.state[conv]
        return int(self._exec(insert(Message).values(
            organization_id=self.org_id, conversation_id=conv, channel_id=st["channel_id"], direction=direction,
            author_kind=author_kind, author_user_id=author, body=body, status=status, sent_at=at,
            provider_message_id=f"m{next(self._msg)}-{secrets.token_hex(4)}").returning(Message.id)).scalar_one())

    def _sync(self, conv: int, at: datetime) -> None:
        st = self.state[conv]
        status = "PENDING" if st["status"] == "NEW" else st["status"]
        self._exec(update(Conversation).where(Conversation.id == conv).values(
            status=status, assigned_user_id=st["assigned"], cycle_number=st["cycle"], last_message_at=at,
            updated_at=at))

    def inbound(self, conv: int, at: str | datetime, body: str = "hello") -> int:
        at = T(at) if isinstance(at, str) else at
        st = self.state[conv]
        mid = self._message(conv, at, "INBOUND", "customer", None, body, "DELIVERED")
        if st["status"] == "NEW":
            self.event(conv, "CREATED", at)
            st["status"] = "PENDING"
        elif st["status"] == "COMPLETED":
            st["status"], st["assigned"] = "PENDING", None
            st["cycle"] += 1
            self.event(conv, "REOPENED", at, message_id=mid)
        self.event(conv, "MESSAGE_RECEIVED", at, message_id=mid)
        self._sync(conv, at)
        return mid

    def reply(self, conv: int, at: str | datetime, user: int | None, body: str = "hi there",
              status: str = "SENT", author_kind: str = "agent") -> int:
        at = T(at) if isinstance(at, str) else at
        mid = self._message(conv, at, "OUTBOUND", author_kind, user, body, status)
        self.event(conv, "MESSAGE_FAILED" if status == "FAILED" else "MESSAGE_SENT", at, actor=user,
                   message_id=mid)
        self._sync(conv, at)
        return mid

    def bot(self, conv: int, at: str | datetime, body: str = "auto-reply") -> int:
        return self.reply(conv, at, None, body, author_kind="bot")

    def accept(self, conv: int, at: str | datetime, user: int) -> None:
        at = T(at) if isinstance(at, str) else at
        self.state[conv].update(status="ASSIGNED", assigned=user)
        self.event(conv, "ACCEPTED", at, actor=user)
        self._sync(conv, at)

    def release(self, conv: int, at: str | datetime, user: int) -> None:
        at = T(at) if isinstance(at, str) else at
        self.state[conv].update(status="PENDING", assigned=None)
        self.event(conv, "RELEASED", at, actor=user)
        self._sync(conv, at)

    def reassign(self, conv: int, at: str | datetime, by: int, to: int) -> None:
        at = T(at) if isinstance(at, str) else at
        prev = self.state[conv]["assigned"]
        self.state[conv].update(status="ASSIGNED", assigned=to)
        self.event(conv, "REASSIGNED", at, actor=by, data={"from_user_id": prev, "to_user_id": to})
        self._sync(conv, at)

    def complete(self, conv: int, at: str | datetime, user: int) -> None:
        at = T(at) if isinstance(at, str) else at
        self.state[conv].update(status="COMPLETED", assigned=None)
        self.event(conv, "COMPLETED", at, actor=user)
        self._sync(conv, at)

    def presence(self, user: int, state: str, at: str | datetime) -> None:
        at = T(at) if isinstance(at, str) else at
        self._exec(insert(PresenceEvent).values(organization_id=self.org_id, user_id=user, state=state,
                                                occurred_at=at))
