"""Erasing a contact: what is gone (bodies, raw payloads, attachments, files, profile, deliveries),
what is kept (anonymous conversations, times, events), and that no replayed delivery brings it back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from switchboard.db.schema import (
    Attachment,
    AuditLog,
    Contact,
    Conversation,
    ConversationEvent,
    ErasedContact,
    ErasedMessage,
    EventDelivery,
    Message,
    SyncCursor,
    WebhookEvent,
)
from switchboard.errors import NotFound, PermissionDenied
from switchboard.services.conversations import accept
from switchboard.services.erasure import erase_contact, remove_files
from switchboard.services.event_webhooks import create_event_webhook, dispatch_events
from switchboard.services.ingest import ingest_items
from switchboard.services.outbox import enqueue_reply
from switchboard.storage import store_bytes
from switchboard.types import AttachmentRef, ContactRef, InboundMessage, MessageEdit, ParsedItem

from .conftest import KEY, World, at, inbound

CARLA, OTTO = "4915550001", "4915550002"


def _contact_id(w: World, pcid: str) -> int:
    with w.uow() as u:
        return int(u.session.execute(select(Contact.id).where(Contact.provider_contact_id == pcid)).scalar_one())


def _seed(w: World, media: Path) -> tuple[int, Path, Path]:
    """Carla: two messages (one with a photo she alone sent, one with a photo Otto sent too) and an
    agent's reply; Otto: one message. Returns Carla's conversation and the two files."""
    with w.uow() as u:  # an event webhook: deliveries carry message texts
        create_event_webhook(u, w.admin, url="https://crm.example.test/hook", events=["message.received"],
                             secret_key=KEY)
    own, _ = store_bytes(media, b"carla's passport", "image/jpeg")
    shared, _ = store_bytes(media, b"a meme everybody sends", "image/jpeg")
    photo = InboundMessage(provider_message_id="wamid.c2", contact=ContactRef(CARLA, display_name="Carla",
                                                                              phone="+4915550001"),
                           sent_at=at(1), body="my passport", raw={"secret": "passport"},
                           attachments=(AttachmentRef("image", mime_type="image/jpeg", provider_media_id="p1"),))
    with w.uow() as u:
        ingest_items(u, channel_id=w.wa, items=[inbound(CARLA, "wamid.c1", 0, "I am Carla, call me", "Carla"), photo,
                                                inbound(OTTO, "wamid.o1", 2, "hi from Otto", "Otto")], now=at(3))
    conv = w.conversation(w.wa, CARLA)
    with w.uow() as u:
        accept(u, w.a1, conv, now=at(4))
        enqueue_reply(u, w.a1, conv, "Hello Carla!", idempotency_key="r1", now=at(5))
        ids = dict(u.session.execute(select(Message.provider_message_id, Message.id)).tuples().all())
        u.session.execute(insert(Attachment).values(message_id=ids["wamid.c1"], kind="image", local_path=str(shared)))
        u.session.execute(update(Attachment).where(Attachment.message_id == ids["wamid.c2"])
                          .values(local_path=str(own)))
        u.session.execute(insert(Attachment).values(message_id=ids["wamid.o1"], kind="image", local_path=str(shared)))
        u.session.execute(insert(SyncCursor).values(channel_id=w.wa, scope=f"chat:{CARLA}",
                                                    cursor='{"peer_id": 1, "last_message_id": 7, "title": "Carla"}'))
        for body, status in ((b'{"from": "4915550001", "text": "I am Carla"}', "PROCESSED"),
                             (b'{"from": "4915550001"}', "RECEIVED"), (b'{"from": "4915550002"}', "PROCESSED")):
            u.session.execute(insert(WebhookEvent).values(channel_id=w.wa, provider="whatsapp", body=body,
                                                          status=status))
        assert dispatch_events(u) == 3
    return conv, own, shared


def test_erasure_removes_personal_data_and_keeps_anonymous_shells(world: World, tmp_path: Path) -> None:
    conv, own, shared = _seed(world, tmp_path / "media")
    carla = _contact_id(world, CARLA)
    with world.uow() as u:
        before = u.session.execute(select(Conversation.status, Conversation.cycle_number, Conversation.last_message_at,
                                          Conversation.first_response_at).where(Conversation.id == conv)).one()
    for refused in (world.manager, world.a1):
        with world.uow() as u, pytest.raises(PermissionDenied):
            erase_contact(u, refused, carla)
    with world.uow() as u, pytest.raises(NotFound):
        erase_contact(u, world.admin, _contact_id(world, OTTO) + 1000)

    with world.uow() as u:
        report = erase_contact(u, world.admin, carla, now=at(10))
    assert (report.conversations, report.messages, report.attachments, report.deliveries) == (1, 3, 2, 1)
    assert report.files == (str(own),)  # the shared file is still Otto's
    assert remove_files(report.files) == 1
    assert not own.exists() and shared.exists()

    with world.uow() as u:
        s = u.session
        c = s.get(Contact, carla)
        assert c is not None and c.display_name == report.pseudonym and c.display_name.startswith("Erased contact ")
        assert (c.username, c.phone) == (None, None) and c.provider_contact_id.startswith("erased:")
        assert CARLA not in c.provider_contact_id and "erased_at" in c.metadata_
        rows = s.execute(select(Message.body, Message.raw, Message.provider_message_id, Message.status,
                                Message.direction).where(Message.conversation_id == conv)).all()
        assert len(rows) == 3 and all(r.body is None and r.raw is None for r in rows)
        assert all(r.provider_message_id is None or r.provider_message_id.startswith("erased:") for r in rows)
        assert ("FAILED", "OUTBOUND") in {(r.status, r.direction) for r in rows}  # the queued reply is never sent
        assert s.execute(select(Message.body).where(Message.provider_message_id == "wamid.o1")).scalar() == "hi from Otto"
        shell = s.execute(select(Conversation.status, Conversation.cycle_number, Conversation.last_message_at,
                                 Conversation.first_response_at, Conversation.last_message_preview)
                          .where(Conversation.id == conv)).one()
        assert tuple(shell[:4]) == tuple(before) and shell.last_message_preview is None
        assert s.execute(select(func.count()).where(ConversationEvent.conversation_id == conv,
                                                   ConversationEvent.type == "MESSAGE_ERASED")).scalar() == 3
        assert s.execute(select(func.count()).select_from(Attachment)).scalar() == 1  # Otto's
        bodies = list(s.execute(select(WebhookEvent.body).order_by(WebhookEvent.id)).scalars())
        assert bodies == [b'{"from": "4915550001"}', b'{"from": "4915550002"}']  # to process: ingest drops it
        audit = s.execute(select(AuditLog.action, AuditLog.actor_user_id, AuditLog.details)
                          .where(AuditLog.action == "contact.erased")).one()
        assert audit.actor_user_id == world.admin.user_id and audit.details["messages"] == 3
        assert s.execute(select(SyncCursor.cursor)).scalar_one() == '{"title": null, "peer_id": 1, "last_message_id": 7}'
        texts = sorted(str(p["data"]["message"]["text"]) for p in s.execute(select(EventDelivery.payload)).scalars())
        assert texts == ["None", "None", "hi from Otto"]
        tombstones = [*s.execute(select(ErasedContact.contact_hash)).scalars(),
                      *s.execute(select(ErasedMessage.message_hash)).scalars()]
        assert len(tombstones) == 3 and not any(CARLA in t or "wamid" in t for t in tombstones)
    with world.uow() as u:
        again = erase_contact(u, world.admin, carla, now=at(11))
    assert again.already_erased and again.messages == 0


def test_replayed_deliveries_cannot_resurrect_erased_content(world: World, tmp_path: Path) -> None:
    _seed(world, tmp_path / "media")
    with world.uow() as u:
        erase_contact(u, world.admin, _contact_id(world, CARLA), now=at(10))
    replay: list[ParsedItem] = [inbound(CARLA, "wamid.c1", 0, "I am Carla, call me", "Carla"),  # a replayed webhook
              inbound(CARLA, "wamid.c0", -5, "an older one a history sync finds", "Carla"),
              MessageEdit("wamid.c2", "edited passport", at(12))]
    with world.uow() as u:
        result = ingest_items(u, channel_id=world.wa, items=replay, now=at(12))
    assert (result.messages_created, result.messages_erased, result.edits) == (0, 2, 0)
    with world.uow() as u:
        s = u.session
        assert s.execute(select(func.count()).where(Contact.provider_contact_id == CARLA)).scalar() == 0
        text_left = list(s.execute(select(Message.body).where(Message.body.is_not(None))).scalars())
        assert text_left == ["hi from Otto"]

    # Carla writes again after the erasure: a new contact and conversation, her new text kept
    with world.uow() as u:
        fresh = ingest_items(u, channel_id=world.wa, items=[inbound(CARLA, "wamid.c9", 20, "me again", "Carla")],
                             now=at(20))
    assert (fresh.messages_created, fresh.conversations_created, fresh.messages_erased) == (1, 1, 0)
    new_conv = world.conversation(world.wa, CARLA)
    with world.uow() as u:
        assert u.session.execute(select(Message.body).where(Message.conversation_id == new_conv)).scalar() == "me again"
        assert u.session.execute(select(func.count()).select_from(Contact)).scalar() == 3
