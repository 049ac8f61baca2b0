"""The walking test: every public service that takes an ``actor`` checks it itself.

It finds, by introspection, every public function of the modules of :mod:`switchboard.services` and
:mod:`switchboard.auth` with an ``actor`` parameter, builds its arguments from a two-organization
world by parameter name, and proves that

* an actor of ANOTHER organization (an admin there, so no role is missing) is refused with NotFound
  or PermissionDenied wherever the call names a row of this organization; a call that names no row
  acts on the caller's own organization only and shows nothing of this one;
* an agent is refused (PermissionDenied) by every function that is not for agents, and a manager by
  every function that is for admins only;
* a refused call leaves nothing written (the organization's rows are unchanged afterwards).

A new service with a parameter that has no recipe FAILS this test: add a recipe (by parameter name,
or in :data:`SPECIAL` for an odd one), so nobody can add an unchecked service.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy import inspect as sa_inspect

import switchboard.auth
import switchboard.errors
import switchboard.services
from switchboard.db.schema import Base, MessageTemplate, SavedReply, WebhookEvent
from switchboard.errors import NotFound, PermissionDenied
from switchboard.services.api_keys import create_api_key
from switchboard.services.conversations import accept
from switchboard.services.event_webhooks import create_event_webhook
from switchboard.services.ingest import ingest_items
from switchboard.services.outbox import claim_due, enqueue_reply, record_failure
from switchboard.types import Actor, AttachmentRef, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork

from .services.conftest import KEY, World, add_user, at, build_world, committing

MARKER = "Org-One-Secret"  # appears in this organization's rows only: a leak shows in a result

# Functions an agent may call (the inbox and their own account); everything else refuses agents.
AGENT_MAY = {
    "accept", "release", "complete", "reopen", "mark_read", "available_actions", "load_conversation",
    "list_conversations", "queue_counts", "get_conversation", "get_thread", "contact_profile",
    "attachment_file", "enqueue_reply", "conversation_window", "list_templates", "enqueue_template",
    "start_conversation", "search_contacts", "take_up", "channel_templates",
    "new_message_window", "sendable_channels", "heartbeat", "get_organization",
    "list_saved_replies", "render_saved_reply", "enqueue_attachment",
    "queue_read_mark", "queue_typing", "thread_version", "inbox_filters",
    "get_message", "list_contacts", "channel_id_by_key", "template_id_by_name",
    "change_password", "recovery_codes_left", "regenerate_recovery_codes",
}
# Functions for managers too (assignment, the team, permissions, the outbox); the rest is for admins.
MANAGER_MAY = AGENT_MAY | {
    "reassign", "list_agents", "waiting_conversations", "list_dead_letters", "retry_dead_letter", "enqueue_bot_reply",
    "resend_unknown", "mark_unknown_sent", "list_unknown", "record_already_sent_reply",
    "set_max_concurrent", "grant_channel_permission", "list_users", "user_channel_grants",
    "set_channel_permission", "set_channel_permissions", "analytics_reader", "customer_names",
    "list_outbox", "outbox_filters", "cancel_pending", "create_saved_reply", "update_saved_reply", "delete_saved_reply",
    "user_id_by_email",
}
# Parameters that name a row of the organization: with them, another organization's actor is refused.
ROW_PARAMETERS = {"conversation_id", "contact_id", "channel_id", "user_id", "to_user_id", "message_id",
                  "event_id", "attachment_id", "permissions", "template_id", "saved_reply_id",
                  "api_key_id", "prefix", "subscription_id"}


@dataclass
class Walk:
    world: World
    conversation_id: int
    contact_id: int
    message_id: int
    attachment_id: int
    event_id: int
    template_id: int  # an approved template of the WhatsApp channel
    saved_reply_id: int
    foreign_admin: Actor  # an admin of the other organization
    api_key_id: int
    api_key_prefix: str
    subscription_id: int


RECIPES: dict[str, Callable[[Walk], Any]] = {
    "conversation_id": lambda w: w.conversation_id,
    "conversation_ids": lambda w: [w.conversation_id],
    "contact_id": lambda w: w.contact_id,
    "channel_id": lambda w: w.world.wa,
    "user_id": lambda w: w.world.a2.user_id,
    "to_user_id": lambda w: w.world.a2.user_id,
    "message_id": lambda w: w.message_id,
    "author_user_id": lambda w: w.world.a1.user_id,
    "provider_message_id": lambda w: "wamid.walk-already-sent",
    "sent_at": lambda w: at(4),
    "attachment_id": lambda w: w.attachment_id,
    "event_id": lambda w: w.event_id,
    "template_id": lambda w: w.template_id,
    "api_key_id": lambda w: w.api_key_id,
    "prefix": lambda w: w.api_key_prefix,
    "scopes": lambda w: ["messages:read"],
    "language": lambda w: "en",
    "subscription_id": lambda w: w.subscription_id,
    "url": lambda w: "https://hooks.acme.test/switchboard",
    "events": lambda w: ["message.received"],
    "saved_reply_id": lambda w: w.saved_reply_id,
    "code": lambda w: "walk",
    "title": lambda w: "Walking",
    "file_name": lambda w: "walk.png",
    "mime_type": lambda w: "image/png",
    "data": lambda w: b"\x89PNG walk",
    "enabled": lambda w: False,
    "parameters": lambda w: {"body": ["walker"]},
    "templates": lambda w: [{"name": "walk", "language": "en", "status": "APPROVED",
                             "components": [{"type": "BODY", "text": "Hi {{1}}"}]}],
    "permissions": lambda w: {w.world.wa: (True, True)},
    "body": lambda w: "walking",
    "recipient": lambda w: "+49 151 23456789",
    "idempotency_key": lambda w: "walk-1",
    "secret_key": lambda w: KEY,
    "credentials": lambda w: {"token": "walk"},
    "key": lambda w: "walk",
    "provider": lambda w: "whatsapp",
    "name": lambda w: "Walk",
    "email": lambda w: "walker@acme.test",
    "role": lambda w: "agent",
    "can_view": lambda w: True,
    "can_send": lambda w: True,
    "max_concurrent": lambda w: 3,
    "password": lambda w: "walking password 1",
    "current_password": lambda w: "walking password 1",
    "new_password": lambda w: "walking password 2",
    "warehouse_path": lambda w: "warehouse-not-built",  # the check comes before any read
    "rate_limit_per_second": lambda w: 2.0,
    "ok": lambda w: True,
    "result": lambda w: "walked",
}
# Odd ones, by qualified name: extra keyword arguments that no parameter name explains.
SPECIAL: dict[str, dict[str, Any]] = {
    "switchboard.services.organizations.update_settings": {"auto_assign": True},
}


def services() -> list[tuple[str, Callable[..., Any]]]:
    found = []
    for pkg in (switchboard.services, switchboard.auth):
        for info in pkgutil.iter_modules(pkg.__path__):
            module = importlib.import_module(f"{pkg.__name__}.{info.name}")
            for name, fn in inspect.getmembers(module, inspect.isfunction):
                if fn.__module__ == module.__name__ and not name.startswith("_") \
                        and "actor" in inspect.signature(fn).parameters:
                    found.append((f"{module.__name__}.{name}", fn))
    return sorted(found)


SERVICES = services()


def arguments(qualname: str, fn: Callable[..., Any], walk: Walk) -> tuple[list[Any], dict[str, Any], bool]:
    """Positional and keyword arguments after ``uow, actor``; and whether the call names a row."""
    args: list[Any] = []
    kwargs: dict[str, Any] = dict(SPECIAL.get(qualname, {}))
    names_a_row = False
    params = list(inspect.signature(fn).parameters.values())
    assert [p.name for p in params[:2]] == ["uow", "actor"], f"{qualname}: services take (uow, actor, ...)"
    for p in params[2:]:
        if p.kind is p.VAR_KEYWORD:
            assert qualname in SPECIAL, f"{qualname} takes **{p.name}: add its arguments to SPECIAL"
            continue
        if p.default is not p.empty:
            continue
        recipe = RECIPES.get(p.name)
        assert recipe is not None, (f"{qualname}: no recipe for parameter {p.name!r}; add one to RECIPES "
                                    "(by name) so the walk can prove the function checks its actor")
        names_a_row |= p.name in ROW_PARAMETERS
        if p.kind is p.KEYWORD_ONLY:
            kwargs[p.name] = recipe(walk)
        else:
            args.append(recipe(walk))
    return args, kwargs, names_a_row


_PARENTS = (("user_id", "users"), ("channel_id", "channels"), ("message_id", "messages"),
            ("conversation_id", "conversations"))


def _rows_of(table: str, columns: set[str]) -> str:
    """The WHERE clause selecting the organization's rows of ``table`` (all rows if none can be told)."""
    if table == "organizations":
        return "where id = :org"
    if "organization_id" in columns:
        return "where organization_id = :org"
    for column, parent in _PARENTS:
        if column in columns:
            return f"where {column} in (select id from {parent} where organization_id = :org)"
    return ""


def snapshot(engine: Engine, organization_id: int) -> dict[str, str]:
    """A digest of every row of the organization."""
    out = {}
    with engine.connect() as con:
        for table in Base.metadata.tables:
            columns = {c["name"] for c in sa_inspect(con).get_columns(table)}
            out[table] = con.execute(text(
                f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {table} t "
                f"{_rows_of(table, columns)}"), {"org": organization_id}).scalar_one()
    return out


@pytest.fixture(scope="module")
def walk(request: pytest.FixtureRequest) -> Iterator[Walk]:
    engine: Engine = request.getfixturevalue("module_engine")
    w = build_world(engine)
    ingest_items_once(w)
    conv = w.conversation(w.wa, "walker")
    with committing(engine) as u:
        accept(u, w.a1, conv, now=at(1))
        msg = enqueue_reply(u, w.a1, conv, "we are on it", idempotency_key="walk-dead", now=at(2))
    with committing(engine) as u:
        (job,) = claim_due(u, now=at(2))
    with committing(engine) as u:
        record_failure(u, msg.id, token=job.token, error_code="131047", error_message="refused", retryable=False, now=at(3))
    with committing(engine) as u:
        event_id = u.session.execute(insert(WebhookEvent).values(
            channel_id=w.wa, provider="whatsapp", body=b"{}", status="FAILED", reason="walk"
        ).returning(WebhookEvent.id)).scalar_one()
        row = u.session.execute(text(
            "select c.contact_id, a.id as attachment_id from conversations c join messages m "
            "on m.conversation_id = c.id join attachments a on a.message_id = m.id where c.id = :c"),
            {"c": conv}).one()
        template_id = u.session.execute(insert(MessageTemplate).values(
            organization_id=w.org, channel_id=w.wa, name="walk", language="en", status="APPROVED",
            components=[{"type": "BODY", "text": "Hi {{1}}"}], synced_at=at(0)
        ).returning(MessageTemplate.id)).scalar_one()
        saved_reply_id = u.session.execute(insert(SavedReply).values(
            organization_id=w.org, code="walk-hello", title=f"Hello {MARKER}", body=f"Hi {{name}} {MARKER}"
        ).returning(SavedReply.id)).scalar_one()
        for table in ("organizations", "channels", "users"):  # names that a leak would show
            column = "id" if table == "organizations" else "organization_id"
            u.session.execute(text(f"update {table} set name = name || :m where {column} = :org"),
                              {"m": f" {MARKER}", "org": w.org})
        key = create_api_key(u, Actor.system(w.org), name=f"walk {MARKER}", scopes=["messages:read"]).view
        subscription = create_event_webhook(u, Actor.system(w.org), url=f"https://acme.test/{MARKER}",
                                            events=["message.received"], secret_key=KEY).view
    foreign_admin = add_user(engine, w.org2, "root@other.test", "admin", "Ozzy Other")
    yield Walk(w, conv, int(row.contact_id), msg.id, int(row.attachment_id), int(event_id), int(template_id),
               int(saved_reply_id), foreign_admin, key.id, key.prefix, subscription.id)


def ingest_items_once(w: World) -> None:
    with committing(w.engine) as u:
        ingest_items(u, channel_id=w.wa, now=at(0), items=[InboundMessage(
            "wamid.walk", ContactRef("walker", display_name=MARKER), at(0), f"{MARKER} message",
            content_type="image", attachments=(AttachmentRef("image", "image/png", provider_media_id="m1"),))])


@pytest.fixture(scope="module")
def module_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """One database for the whole walk (the world is only read: every call is rolled back)."""
    from sqlalchemy import create_engine

    from tests.conftest import _admin, _url_for

    pg_root = request.getfixturevalue("pg_root")
    template = request.getfixturevalue("template_db")
    name = "sb_policy_walk"
    admin = _admin(pg_root)
    with admin.connect() as con:
        con.execute(text(f'drop database if exists "{name}" with (force)'))
        con.execute(text(f'create database "{name}" template "{template}"'))
    engine = create_engine(_url_for(pg_root, name))
    yield engine
    engine.dispose()
    with admin.connect() as con:
        con.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def _call(walk: Walk, qualname: str, fn: Callable[..., Any], actor: Actor) -> tuple[Any, bool]:
    args, kwargs, names_a_row = arguments(qualname, fn, walk)
    with UnitOfWork(walk.world.engine) as u:  # never committed: the entrypoint would commit, not us
        return fn(u, actor, *args, **kwargs), names_a_row


def test_the_walk_finds_the_services() -> None:
    names = {q.rsplit(".", 1)[1] for q, _ in SERVICES}
    assert {"create_channel", "channel_credentials", "set_channel_credentials", "update_settings", "accept",
            "enqueue_reply", "list_conversations"} <= names
    assert len(SERVICES) >= 40


@pytest.mark.parametrize(("qualname", "fn"), SERVICES, ids=[q for q, _ in SERVICES])
def test_another_organization_is_refused(walk: Walk, qualname: str, fn: Callable[..., Any]) -> None:
    before = snapshot(walk.world.engine, walk.world.org)
    args, kwargs, names_a_row = arguments(qualname, fn, walk)
    if names_a_row:
        with pytest.raises((NotFound, PermissionDenied)):
            _call(walk, qualname, fn, walk.foreign_admin)
    else:  # it acts on the caller's own organization: nothing of ours may show
        try:
            result, _ = _call(walk, qualname, fn, walk.foreign_admin)
        except (NotFound, PermissionDenied, switchboard.errors.SwitchboardError):
            result = None
        assert MARKER not in repr(result)
    assert snapshot(walk.world.engine, walk.world.org) == before


# services that need more than the agent role (the others are for everyone: nothing to refuse)
ROLE_SERVICES = [(q, fn) for q, fn in SERVICES if q.rsplit(".", 1)[1] not in AGENT_MAY]


@pytest.mark.parametrize(("qualname", "fn"), ROLE_SERVICES, ids=[q for q, _ in ROLE_SERVICES])
def test_a_missing_role_is_refused(walk: Walk, qualname: str, fn: Callable[..., Any]) -> None:
    name = qualname.rsplit(".", 1)[1]
    refused = [who for who, may in ((walk.world.a1, AGENT_MAY), (walk.world.manager, MANAGER_MAY))
               if name not in may]
    assert refused
    before = snapshot(walk.world.engine, walk.world.org)
    for actor in refused:
        with pytest.raises(PermissionDenied):
            _call(walk, qualname, fn, actor)
    assert snapshot(walk.world.engine, walk.world.org) == before


def test_a_forged_actor_is_refused(walk: Walk) -> None:
    """An actor claiming another organization than its user's is refused before anything is read."""
    from switchboard.services.inbox_views import list_conversations

    forged = Actor(walk.world.admin.user_id, walk.world.org2, "admin", walk.world.admin.email)
    with UnitOfWork(walk.world.engine) as u, pytest.raises(PermissionDenied, match="another organization"):
        list_conversations(u, forged)


# What an API key with every scope may call beyond the inbox (conversations:write grants assigning,
# webhooks:manage the event webhooks).
KEY_MAY = AGENT_MAY | {"reassign", "user_id_by_email", "create_event_webhook", "list_event_webhooks",
                       "delete_event_webhook", "resume_event_webhook", "list_event_deliveries"}
KEY_REFUSED = [(q, fn) for q, fn in SERVICES if q.rsplit(".", 1)[1] not in KEY_MAY]


@pytest.mark.parametrize(("qualname", "fn"), KEY_REFUSED, ids=[q for q, _ in KEY_REFUSED])
def test_an_api_key_has_only_what_its_scopes_grant(walk: Walk, qualname: str, fn: Callable[..., Any]) -> None:
    """A key holding every scope is still refused everything its scopes do not grant (users, channels,
    the organization, other keys...): a key is not an admin, whatever its role field says."""
    from switchboard.db.schema import API_SCOPES

    key = Actor.for_api_key(walk.api_key_id, walk.world.org, walk.api_key_prefix, frozenset(API_SCOPES), None)
    with UnitOfWork(walk.world.engine) as u:
        u.session.execute(text("update api_keys set scopes = cast(:s as jsonb) where id = :k"),
                          {"s": '["' + '", "'.join(API_SCOPES) + '"]', "k": walk.api_key_id})
        args, kwargs, _ = arguments(qualname, fn, walk)
        with pytest.raises(PermissionDenied):
            fn(u, key, *args, **kwargs)
