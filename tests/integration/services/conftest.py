"""A small organization for the inbox service tests: channels, users with permissions, a second org."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert

from switchboard.db.schema import User
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.ingest import IngestResult, ingest_items
from switchboard.services.organizations import create_organization
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork

KEY = b"k" * 32
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass
class World:
    engine: Engine
    org: int
    wa: int  # channel: agents a1, a2 view+send; viewer view only
    tg: int  # channel: only a2 view+send
    admin: Actor
    manager: Actor
    a1: Actor
    a2: Actor
    viewer: Actor
    nobody: Actor  # agent without any permission
    org2: int
    other_ch: int
    outsider: Actor  # manager of org2

    def uow(self) -> AbstractContextManager[UnitOfWork]:
        """A unit of work that commits when its block ends without an error (as an entrypoint does)."""
        return committing(self.engine)

    def ingest(self, channel: int, contact: str, pmid: str, minutes: float, text: str = "hello",
               name: str | None = None) -> IngestResult:
        with self.uow() as u:
            result = ingest_items(u, channel_id=channel, items=[inbound(contact, pmid, minutes, text, name)],
                                  now=at(minutes))
            u.commit()
            return result

    def conversation(self, channel: int, contact: str) -> int:
        from sqlalchemy import select

        from switchboard.db.schema import Contact, Conversation

        with self.uow() as u:
            return int(u.session.execute(
                select(Conversation.id).join(Contact, Contact.id == Conversation.contact_id)
                .where(Conversation.channel_id == channel, Contact.provider_contact_id == contact)
            ).scalar_one())


@contextmanager
def committing(engine: Engine) -> Iterator[UnitOfWork]:
    with UnitOfWork(engine) as u:
        yield u
        u.commit()


def inbound(contact: str, pmid: str, minutes: float, text: str = "hello", name: str | None = None
            ) -> InboundMessage:
    return InboundMessage(provider_message_id=pmid, contact=ContactRef(contact, display_name=name),
                          sent_at=at(minutes), body=text, raw={"id": pmid})


def add_user(engine: Engine, org: int, email: str, role: str, name: str | None = None,
             status: str = "active") -> Actor:
    """Users straight into the table (no argon2 cost); users.create_user is tested by its owner."""
    with UnitOfWork(engine) as u:
        uid = u.session.execute(insert(User).values(
            organization_id=org, email=email, name=name or email.split("@")[0], role=role, status=status
        ).returning(User.id)).scalar_one()
        u.commit()
    return Actor(int(uid), org, role, email)  # type: ignore[arg-type]


def build_world(engine: Engine) -> World:
    with committing(engine) as u:
        org = create_organization(u, "Acme", "Europe/Berlin")
        system = Actor.system(org)
        wa = create_channel(u, system, key="wa-main", provider="whatsapp", name="WhatsApp", secret_key=KEY).id
        tg = create_channel(u, system, key="tg", provider="telegram", name="Telegram", secret_key=KEY).id
        org2 = create_organization(u, "Other")
        other = create_channel(u, Actor.system(org2), key="wa-main", provider="whatsapp", name="Other WA",
                               secret_key=KEY).id
    admin = add_user(engine, org, "admin@acme.test", "admin", "Ada Admin")
    manager = add_user(engine, org, "manager@acme.test", "manager", "Max Manager")
    a1 = add_user(engine, org, "a1@acme.test", "agent", "Alice Agent")
    a2 = add_user(engine, org, "a2@acme.test", "agent", "Bob Agent")
    viewer = add_user(engine, org, "viewer@acme.test", "agent", "Vic Viewer")
    nobody = add_user(engine, org, "nobody@acme.test", "agent", "Nina Nobody")
    outsider = add_user(engine, org2, "boss@other.test", "manager", "Olga Other")
    with committing(engine) as u:
        for agent in (a1, a2):
            grant_channel_permission(u, system, user_id=agent.user_id, channel_id=wa, can_view=True, can_send=True)
        grant_channel_permission(u, system, user_id=a2.user_id, channel_id=tg, can_view=True, can_send=True)
        grant_channel_permission(u, system, user_id=viewer.user_id, channel_id=wa, can_view=True, can_send=False)
    return World(engine, org, wa, tg, admin, manager, a1, a2, viewer, nobody, org2, other, outsider)


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)
