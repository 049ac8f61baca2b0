"""Starting a conversation (services/outreach.py) on real PostgreSQL: the recipient checked per platform,
the contact and the conversation found or created and handed to the sender, the first message queued
through the ordinary paths (a template where WhatsApp requires one), idempotent on the key."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from switchboard.db.schema import Contact, Conversation, ConversationEvent, Message, MessageTemplate
from switchboard.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.conversations import accept, complete
from switchboard.services.outreach import search_contacts, start_conversation
from switchboard.services.templates import sync_templates
from switchboard.types import Actor

from .conftest import KEY, World, at

PHONE = "+49 151 23456789"
WA_ID = "4915123456789"
WELCOME = {"name": "welcome", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
           "components": [{"type": "BODY", "text": "Hi {{1}}, this is Acme.", "example": {"body_text": [["Ana"]]}}]}


def _template(world: World) -> int:
    with world.uow() as u:
        sync_templates(u, Actor.system(world.org), world.wa, [WELCOME], now=at(0))
        return int(u.session.execute(select(MessageTemplate.id).where(MessageTemplate.channel_id == world.wa,
                                                                       MessageTemplate.name == "welcome")).scalar_one())


def _count(world: World, model: Any) -> int:
    with world.uow() as u:
        return int(u.session.execute(select(func.count()).select_from(model)).scalar_one())


def _conv(world: World, conversation_id: int) -> Any:
    with world.uow() as u:
        return u.session.execute(select(Conversation).where(Conversation.id == conversation_id)).scalar_one()


def _events(world: World, conversation_id: int) -> list[str]:
    with world.uow() as u:
        return list(u.session.execute(select(ConversationEvent.type).where(
            ConversationEvent.conversation_id == conversation_id).order_by(ConversationEvent.id)).scalars())


def _start(world: World, actor: Actor, channel: int, recipient: str, key: str = "k1", minutes: float = 5,
           **kw: Any) -> Any:
    with world.uow() as u:
        return start_conversation(u, actor, channel, recipient, idempotency_key=key, now=at(minutes), **kw)


def test_a_new_whatsapp_number_gets_a_template_in_a_new_conversation_assigned_to_the_sender(world: World) -> None:
    tid = _template(world)
    msg = _start(world, world.a1, world.wa, PHONE, template_id=tid, parameters={"body": ["Ana"]})
    assert (msg.status, msg.content_type, msg.body, msg.author_user_id) == (
        "PENDING", "template", "Hi Ana, this is Acme.", world.a1.user_id)
    with world.uow() as u:
        contact = u.session.execute(select(Contact).where(Contact.provider_contact_id == WA_ID)).scalar_one()
        assert (contact.phone, contact.provider) == ("+4915123456789", "whatsapp")
    conv = _conv(world, msg.conversation_id)
    assert (conv.status, conv.assigned_user_id, conv.contact_id, conv.cycle_number) == (
        "ASSIGNED", world.a1.user_id, contact.id, 1)
    assert _events(world, conv.id) == ["CREATED", "ACCEPTED"]


def test_free_text_to_a_new_whatsapp_number_is_refused_with_the_window_sentence(world: World) -> None:
    with pytest.raises(InvalidInput, match="only an approved template"):
        _start(world, world.a1, world.wa, PHONE, body="hello")
    assert (_count(world, Contact), _count(world, Conversation)) == (0, 0)  # nothing written


def test_an_existing_contact_with_an_open_conversation_gets_free_text_in_it(world: World) -> None:
    world.ingest(world.wa, WA_ID, "wamid.1", 0, "hi there", name="Ana")
    conv_id = world.conversation(world.wa, WA_ID)
    msg = _start(world, world.a1, world.wa, "0049 151 23456789", body="hello Ana", minutes=60)
    assert (msg.conversation_id, msg.content_type, msg.status) == (conv_id, "text", "PENDING")
    conv = _conv(world, conv_id)
    assert (conv.status, conv.assigned_user_id) == ("ASSIGNED", world.a1.user_id)
    assert (_count(world, Contact), _count(world, Conversation)) == (1, 1)
    assert _events(world, conv_id)[-1] == "ACCEPTED"


def test_a_completed_conversation_starts_a_new_cycle_for_the_sender(world: World) -> None:
    tid = _template(world)
    world.ingest(world.wa, WA_ID, "wamid.1", 0, "hi")
    conv_id = world.conversation(world.wa, WA_ID)
    with world.uow() as u:
        accept(u, world.a2, conv_id, now=at(1))
        complete(u, world.a2, conv_id, now=at(2))
    msg = _start(world, world.a1, world.wa, PHONE, template_id=tid, parameters={"body": ["Ana"]},
                 minutes=3 * 24 * 60)
    conv = _conv(world, conv_id)
    assert msg.conversation_id == conv_id
    assert (conv.status, conv.assigned_user_id, conv.cycle_number) == ("ASSIGNED", world.a1.user_id, 2)
    assert _events(world, conv_id)[-3:] == ["COMPLETED", "REOPENED", "ACCEPTED"]


def test_a_conversation_held_by_another_agent_is_not_taken_over(world: World) -> None:
    world.ingest(world.wa, WA_ID, "wamid.1", 0, "hi")
    with world.uow() as u:
        accept(u, world.a2, world.conversation(world.wa, WA_ID), now=at(1))
    with pytest.raises(PermissionDenied, match="assigned to another agent"):
        _start(world, world.a1, world.wa, PHONE, body="hello")


@pytest.mark.parametrize("bad", ["12345", "+49 1", "+1 555 0000 0000 0000", "not a number", ""])
def test_invalid_numbers_are_refused(world: World, bad: str) -> None:
    with pytest.raises(InvalidInput):
        _start(world, world.a1, world.wa, bad, body="hello")


def test_another_organizations_channel_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        _start(world, world.a1, world.other_ch, PHONE, body="hello")


def test_without_send_permission_it_is_refused(world: World) -> None:
    tid = _template(world)
    for who in (world.viewer, world.nobody):
        with pytest.raises(PermissionDenied):
            _start(world, who, world.wa, PHONE, template_id=tid, parameters={"body": ["Ana"]})
    assert _count(world, Contact) == 0


def test_a_retry_with_the_same_key_returns_the_same_message(world: World) -> None:
    tid = _template(world)
    first = _start(world, world.a1, world.wa, PHONE, template_id=tid, parameters={"body": ["Ana"]})
    again = _start(world, world.a1, world.wa, PHONE, template_id=tid, parameters={"body": ["Ana"]}, minutes=6)
    assert again.id == first.id
    assert (_count(world, Contact), _count(world, Conversation), _count(world, Message)) == (1, 1, 1)
    with pytest.raises(Conflict):
        _start(world, world.a2, world.tg, "12345", body="hi")  # the same key on another channel


def test_exactly_one_of_text_or_template(world: World) -> None:
    tid = _template(world)
    with pytest.raises(InvalidInput, match="exactly one"):
        _start(world, world.a1, world.wa, PHONE)
    with pytest.raises(InvalidInput, match="exactly one"):
        _start(world, world.a1, world.wa, PHONE, body="x", template_id=tid)


def test_telegram_takes_a_numeric_id_or_a_known_username(world: World) -> None:
    with pytest.raises(InvalidInput, match="no Telegram contact @nobody_here"):
        _start(world, world.a2, world.tg, "@nobody_here", body="hi")
    world.ingest(world.tg, "777", "tg.1", 0, "yo")
    with world.uow() as u:
        u.session.execute(update(Contact).where(Contact.provider_contact_id == "777").values(username="known_user"))
    by_name = _start(world, world.a2, world.tg, "@Known_User", body="hello again", key="t1", minutes=5 * 24 * 60)
    assert by_name.conversation_id == world.conversation(world.tg, "777")  # no window on Telegram
    by_id = _start(world, world.a2, world.tg, "424242", body="hello", key="t2")
    assert by_id.conversation_id == world.conversation(world.tg, "424242")


def test_messenger_cannot_message_a_person_first(world: World) -> None:
    system = Actor.system(world.org)
    with world.uow() as u:
        fb = create_channel(u, system, key="fb", provider="messenger", name="Messenger", secret_key=KEY).id
        grant_channel_permission(u, system, user_id=world.a1.user_id, channel_id=fb, can_view=True, can_send=True)
    with pytest.raises(InvalidInput, match="cannot message a person first"):
        _start(world, world.a1, fb, "123456", body="hi")
    world.ingest(fb, "123456", "m.1", 0, "hello page")
    msg = _start(world, world.a1, fb, "123456", body="hi", minutes=60)
    assert msg.conversation_id == world.conversation(fb, "123456")
    with world.uow() as u:
        options = search_contacts(u, world.a1, fb, "")
    assert [o.provider_contact_id for o in options] == ["123456"]


def test_search_contacts_by_name_phone_and_id(world: World) -> None:
    world.ingest(world.wa, WA_ID, "wamid.1", 0, "hi", name="Ana Lima")
    world.ingest(world.wa, "15550001111", "wamid.2", 1, "hi", name="Bo_b")
    with world.uow() as u:
        assert [o.name for o in search_contacts(u, world.a1, world.wa, "ana")] == ["Ana Lima"]
        assert [o.name for o in search_contacts(u, world.a1, world.wa, "+1555")] == ["Bo_b"]
        assert [o.name for o in search_contacts(u, world.a1, world.wa, "o_b")] == ["Bo_b"]
        assert [o.name for o in search_contacts(u, world.a1, world.wa, "%")] == []
        assert len(search_contacts(u, world.a1, world.wa, "")) == 2
        [ana] = search_contacts(u, world.a1, world.wa, "4915")
        assert ana.conversation_id == world.conversation(world.wa, WA_ID)
        with pytest.raises(NotFound):
            search_contacts(u, world.a1, world.other_ch, "")


def test_a_picked_contact_and_what_its_first_message_may_be(world: World) -> None:
    from switchboard.domain.messaging_window import WindowState
    from switchboard.services.outreach import new_message_window, sendable_channels

    world.ingest(world.wa, WA_ID, "wamid.1", 0, "hi", name="Ana")
    with world.uow() as u:
        [ana] = search_contacts(u, world.a1, world.wa, "Ana")
        assert new_message_window(u, world.a1, world.wa, ana.id, now=at(60)).state is WindowState.OPEN
        assert new_message_window(u, world.a1, world.wa, ana.id, now=at(25 * 60)).state is WindowState.TEMPLATE_REQUIRED
        assert new_message_window(u, world.a1, world.wa, None, now=at(60)).state is WindowState.TEMPLATE_REQUIRED
        assert new_message_window(u, world.a1, world.wa, None, now=at(60),  # a typed number of a known contact
                                  recipient="+49 151 23456789").state is WindowState.OPEN
        assert new_message_window(u, world.a2, world.tg, None).state is WindowState.NO_WINDOW
        with pytest.raises(PermissionDenied):
            new_message_window(u, world.viewer, world.wa, ana.id)
        with pytest.raises(NotFound):  # a WhatsApp contact is not a Telegram one
            new_message_window(u, world.a2, world.tg, ana.id)
        assert [c.key for c in sendable_channels(u, world.a1)] == ["wa-main"]
        assert [c.key for c in sendable_channels(u, world.viewer)] == []
        assert {c.key for c in sendable_channels(u, world.manager)} == {"wa-main", "tg"}
    msg = _start(world, world.a1, world.wa, "", contact_id=ana.id, body="hello Ana", minutes=60)
    assert msg.conversation_id == ana.conversation_id
    with pytest.raises(NotFound):
        _start(world, world.a2, world.tg, "", contact_id=ana.id, body="hi", key="k2")


@pytest.mark.parametrize(("provider", "typed", "contact_id"), [
    ("twilio", "+1 415 555 2671", "+14155552671"),
    ("email", "Ann Smith <Ann@Example.com>", "ann@example.com"),
])
def test_sms_and_email_start_with_free_text(world: World, provider: str, typed: str, contact_id: str) -> None:
    system = Actor.system(world.org)
    with world.uow() as u:
        ch = create_channel(u, system, key=provider, provider=provider, name=provider, secret_key=KEY).id
        grant_channel_permission(u, system, user_id=world.a1.user_id, channel_id=ch, can_view=True, can_send=True)
    msg = _start(world, world.a1, ch, typed, body="Your order has shipped.", key=f"{provider}-1")
    assert (msg.status, msg.body) == ("PENDING", "Your order has shipped.")  # no messaging window
    with world.uow() as u:
        contact = u.session.execute(select(Contact).join(Conversation, Conversation.contact_id == Contact.id)
                                    .where(Conversation.id == msg.conversation_id)).scalar_one()
    assert contact.provider_contact_id == contact_id
    assert _start(world, world.a1, ch, typed, body="Your order has shipped.", key=f"{provider}-1").id == msg.id
