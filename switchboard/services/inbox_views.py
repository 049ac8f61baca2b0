"""Read side of the inbox: queues, threads, counts, contact profiles, the agents page.

Lists use keyset pagination (``last_message_at desc, id desc`` for conversations, ``sent_at desc, id
desc`` for a thread) on the indexes of the schema, so a page costs the same at row 50 and at row 500,000.
Cursors are opaque strings; a malformed one is refused with InvalidInput.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import BigInteger, DateTime, and_, func, literal, or_, select, text, tuple_, union

from switchboard.db.schema import (
    CONVERSATION_STATUSES,
    MESSAGE_STATUSES,
    AgentPresence,
    Attachment,
    Channel,
    Contact,
    Conversation,
    Message,
    User,
)
from switchboard.domain.conversation import ConversationStatus
from switchboard.errors import InvalidInput, NotFound, PermissionDenied
from switchboard.policy import Action, require, require_view, visible_channel_ids
from switchboard.services.conversations import (
    ConversationView,
    contact_label,
    load_conversation,
    row_to_view,
    view_select,
)
from switchboard.services.messages import MessageView, message_views
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

T = TypeVar("T")
MAX_LIMIT = 200
NAMES_PER_STATEMENT = 5000  # conversation ids bound in one statement (customer_names)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ContactProfile:
    id: int
    provider: str
    provider_contact_id: str
    display_name: str | None
    username: str | None
    phone: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    lead_stage: str | None
    metadata: dict[str, Any]
    conversations: tuple[ConversationView, ...]


@dataclass(frozen=True, slots=True)
class InboxFilters:
    """The choices of the inbox's filters: (id, name) of channels and of people conversations go to."""

    channels: tuple[tuple[int, str], ...]
    assignees: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class AgentView:
    id: int
    name: str
    email: str
    role: str
    status: str
    presence: str  # ONLINE | AWAY | OFFLINE (OFFLINE when never seen)
    last_heartbeat_at: datetime | None
    open_assigned: int
    max_concurrent: int


def encode_cursor(at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, rid = raw.partition("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError
        return parsed, int(rid)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the page cursor is malformed; start again from the first page") from None


def _ts(at: datetime) -> Any:
    return literal(at, DateTime(timezone=True))


def _id(rid: int) -> Any:
    return literal(rid, BigInteger)


def _limit(limit: int, *, name: str = "limit", maximum: int | None = MAX_LIMIT) -> int:
    """``limit`` when it is at least 1 and at most ``maximum`` (None: no maximum), else a clear refusal."""
    if limit < 1 or (maximum is not None and limit > maximum):
        raise InvalidInput(f"{name} must be between 1 and {maximum}" if maximum is not None
                           else f"{name} must be at least 1")
    return limit


def like_pattern(term: str) -> str:
    """``%term%`` with ``\\``, ``%`` and ``_`` escaped (backslash is PostgreSQL's default LIKE escape)."""
    esc = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{esc}%"


def list_conversations(
    uow: UnitOfWork,
    actor: Actor,
    *,
    queue: Literal["unassigned", "mine", "all"] = "all",
    status: str | None = None,
    channel_id: int | None = None,
    assigned_user_id: int | None = None,
    unread_only: bool = False,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    updated_since: datetime | None = None,
) -> Page[ConversationView]:
    """One page of a queue, newest activity first, with filters (each a bound parameter of the same
    keyset query; ``updated_since``: changed or written to at or after that time); only channels the
    actor may view."""
    limit = _limit(limit)
    visible = visible_channel_ids(uow, actor)
    conds: list[Any] = [Conversation.organization_id == actor.organization_id]
    if visible is not None:
        if not visible:
            return Page([], None)
        conds.append(Conversation.channel_id.in_(sorted(visible)))
    if queue == "unassigned":
        conds.append(Conversation.status == ConversationStatus.PENDING)
    elif queue == "mine":
        conds += [Conversation.status == ConversationStatus.ASSIGNED, Conversation.assigned_user_id == actor.user_id]
    elif queue != "all":
        raise InvalidInput(f"unknown queue {queue!r}; use unassigned, mine or all")
    if status == "OPEN":  # everything not completed: waiting or being handled
        conds.append(Conversation.status != ConversationStatus.COMPLETED)
    elif status is not None:
        if status not in CONVERSATION_STATUSES:
            raise InvalidInput(f"unknown status {status!r}; use OPEN, {', '.join(CONVERSATION_STATUSES)}")
        conds.append(Conversation.status == status)
    if channel_id is not None:
        require_view(uow, actor, channel_id)
        conds.append(Conversation.channel_id == channel_id)
    if assigned_user_id is not None:
        conds.append(Conversation.assigned_user_id == assigned_user_id)
    if unread_only:
        conds.append(Conversation.unread_count > 0)
    if updated_since is not None:
        conds.append(Conversation.updated_at >= _ts(updated_since))
    if cursor:
        at, rid = decode_cursor(cursor)
        conds.append(tuple_(Conversation.last_message_at, Conversation.id) < tuple_(_ts(at), _id(rid)))
    conds.append(Conversation.last_message_at.is_not(None))
    order = (Conversation.last_message_at.desc(), Conversation.id.desc())
    stmt = view_select().where(*conds)
    if search and search.strip():
        hit = _search_matches(uow, conds, search.strip(), limit + 1, actor.organization_id)
        stmt = view_select().join(hit, hit.c.id == Conversation.id)
    rows = uow.session.execute(stmt.order_by(*order).limit(limit + 1)).all()
    items = [row_to_view(r) for r in rows[:limit]]
    nxt = None
    if len(rows) > limit and items[-1].last_message_at is not None:
        nxt = encode_cursor(items[-1].last_message_at, items[-1].id)
    return Page(items, nxt)


def _search_matches(uow: UnitOfWork, conds: list[Any], term: str, n: int, organization_id: int) -> Any:
    """The first ``n`` conversations (in list order) whose contact or any message (of the organization:
    the body index is not per organization) matches ``term``.

    Two branches, each ordered and limited on its own, then merged: contacts whose name, username,
    phone or platform id contains the term, and conversations with a message body containing it. Each
    branch can use the trigram (GIN) indexes for a rare term or walk the recency index and stop early
    for a common one; PostgreSQL picks per term, which needs a plan made for the actual pattern (hence
    ``force_custom_plan``: a cached generic plan cannot know how selective the pattern is).
    """
    uow.session.execute(text("set local plan_cache_mode = force_custom_plan"))
    pat = like_pattern(term)
    order = (Conversation.last_message_at.desc(), Conversation.id.desc())
    by_contact = (
        select(Conversation.id, Conversation.last_message_at)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(*conds, or_(Contact.display_name.ilike(pat), Contact.username.ilike(pat),
                           Contact.phone.ilike(pat), Contact.provider_contact_id.ilike(pat)))
        .order_by(*order).limit(n)
    )
    by_message = (
        select(Conversation.id, Conversation.last_message_at)
        .where(*conds, Conversation.id.in_(select(Message.conversation_id).where(
            Message.organization_id == organization_id, Message.body.ilike(pat))))
        .order_by(*order).limit(n)
    )
    return union(by_contact, by_message).subquery("hit")


def channel_label(name: str, provider: str) -> str:
    """A channel as people read it: its name, with the platform when the name does not say it."""
    return name if provider in name.lower() else f"{name} ({provider})"


def inbox_filters(uow: UnitOfWork, actor: Actor) -> InboxFilters:
    """The channels the actor may view (removed ones too: their history stays) and the organization's
    active people, for the inbox's channel and assignee filters."""
    visible = visible_channel_ids(uow, actor)
    channels = select(Channel.id, Channel.name, Channel.provider).where(
        Channel.organization_id == actor.organization_id)
    if visible is not None:
        channels = channels.where(Channel.id.in_(sorted(visible)))
    people = select(User.id, User.name).where(User.organization_id == actor.organization_id,
                                              User.status == "active").order_by(User.name, User.id)
    return InboxFilters(
        tuple((r.id, channel_label(r.name, r.provider)) for r in uow.session.execute(channels.order_by(Channel.name, Channel.id))),
        tuple((r.id, r.name) for r in uow.session.execute(people)),
    )


def waiting_conversations(uow: UnitOfWork, actor: Actor, *, limit: int = 100) -> list[ConversationView]:
    """Manager: the conversations waiting for an agent, longest wait first. A conversation waits since
    its current cycle started (the customer's first message after the last completion)."""
    limit = _limit(limit)
    actor = require(uow, actor, Action.VIEW_TEAM)  # the team's backlog (an API key never sees it)
    since = func.coalesce(Conversation.cycle_started_at, Conversation.last_inbound_at, Conversation.created_at)
    rows = uow.session.execute(
        view_select().where(Conversation.organization_id == actor.organization_id,
                            Conversation.status == ConversationStatus.PENDING)
        .order_by(since.asc(), Conversation.id.asc()).limit(limit)
    ).all()
    return [row_to_view(r) for r in rows]


def waiting_since(c: ConversationView) -> datetime:
    """When ``c`` started waiting (the ordering of :func:`waiting_conversations`)."""
    return c.cycle_started_at or c.last_inbound_at or c.created_at


def queue_counts(uow: UnitOfWork, actor: Actor) -> dict[str, int]:
    """``{"unassigned": …, "mine": …, "all_open": …}`` over the channels the actor may view."""
    visible = visible_channel_ids(uow, actor)
    if visible is not None and not visible:
        return {"unassigned": 0, "mine": 0, "all_open": 0}
    stmt = select(
        func.count().filter(Conversation.status == ConversationStatus.PENDING),
        func.count().filter(and_(Conversation.status == ConversationStatus.ASSIGNED,
                                 Conversation.assigned_user_id == actor.user_id)),
        func.count(),
    ).where(Conversation.organization_id == actor.organization_id,
            Conversation.status.in_((ConversationStatus.PENDING, ConversationStatus.ASSIGNED)))
    if visible is not None:
        stmt = stmt.where(Conversation.channel_id.in_(sorted(visible)))
    unassigned, mine, all_open = uow.session.execute(stmt).one()
    return {"unassigned": int(unassigned), "mine": int(mine), "all_open": int(all_open)}


def get_conversation(uow: UnitOfWork, actor: Actor, conversation_id: int) -> ConversationView:
    load_conversation(uow, actor, conversation_id)
    r = uow.session.execute(view_select().where(Conversation.id == conversation_id)).one()
    return row_to_view(r)


def get_thread(uow: UnitOfWork, actor: Actor, conversation_id: int, *, before: str | None = None,
               limit: int = 50) -> Page[MessageView]:
    """The newest page of messages (or the page before ``before``), returned oldest → newest."""
    limit = _limit(limit)
    load_conversation(uow, actor, conversation_id)
    where: Any = Message.conversation_id == conversation_id
    if before:
        at, rid = decode_cursor(before)
        where = and_(where, tuple_(Message.sent_at, Message.id) < tuple_(_ts(at), _id(rid)))
    got = message_views(uow, where, order=(Message.sent_at.desc(), Message.id.desc()), limit=limit + 1)
    page = got[:limit]
    nxt = encode_cursor(page[-1].sent_at, page[-1].id) if len(got) > limit else None
    page.reverse()
    return Page(page, nxt)


def thread_version(uow: UnitOfWork, actor: Actor, conversation_id: int, *, newest: int | None = None) -> str:
    """A token that changes whenever the thread would look different: a new, edited or deleted
    message, a status change (sent, delivered, read, failed), an attachment downloaded. Cheap enough
    for the open thread to ask every second and reload only on change: the thread's count and highest
    id (from its index), the rest over the ``newest`` messages the agent sees (all of them if None) —
    a long thread is not read whole every second."""
    load_conversation(uow, actor, conversation_id)
    shown = select(Message).where(Message.conversation_id == conversation_id)
    if newest is not None:
        shown = shown.order_by(Message.sent_at.desc(), Message.id.desc()).limit(_limit(newest, name="newest", maximum=None))
    m = shown.subquery("shown")
    downloaded = (select(func.count(Attachment.id))
                  .where(Attachment.message_id == m.c.id, Attachment.local_path.is_not(None))
                  .correlate(m).scalar_subquery())
    total = uow.session.execute(select(func.count(Message.id), func.max(Message.id))
                                .where(Message.conversation_id == conversation_id)).one()
    row = uow.session.execute(
        select(func.max(m.c.status_updated_at),
               *(func.count(m.c.id).filter(m.c.status == s) for s in MESSAGE_STATUSES),
               func.count(m.c.id).filter(m.c.is_edited), func.count(m.c.id).filter(m.c.is_deleted),
               func.coalesce(func.sum(downloaded), 0))
    ).one()
    return "|".join(str(v) for v in (*total, *row))


def contact_profile(uow: UnitOfWork, actor: Actor, contact_id: int) -> ContactProfile:
    """The contact and its conversations on the channels the actor may view."""
    visible = visible_channel_ids(uow, actor)
    c = uow.session.get(Contact, contact_id)
    if c is None or c.organization_id != actor.organization_id:
        raise NotFound(f"contact {contact_id} not found")
    stmt = view_select().where(Conversation.contact_id == contact_id)
    all_convs = [row_to_view(r) for r in uow.session.execute(
        stmt.order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc()))]
    convs = [v for v in all_convs if visible is None or v.channel_id in visible]
    if all_convs and not convs:
        raise PermissionDenied("this contact only wrote on channels you have no 'view' permission on")
    return ContactProfile(c.id, c.provider, c.provider_contact_id, c.display_name, c.username, c.phone,
                          c.first_seen_at, c.last_seen_at, c.lead_stage, dict(c.metadata_ or {}), tuple(convs))


def list_agents(uow: UnitOfWork, actor: Actor) -> list[AgentView]:
    """Manager: every user of the organization with presence and open assigned load."""
    me = require(uow, actor, Action.VIEW_TEAM)
    open_count = (
        select(func.count())
        .where(Conversation.assigned_user_id == User.id, Conversation.status == ConversationStatus.ASSIGNED)
        .scalar_subquery()
    )
    rows = uow.session.execute(
        select(User.id, User.name, User.email, User.role, User.status, AgentPresence.state,
               AgentPresence.last_heartbeat_at, open_count.label("open"), User.max_concurrent)
        .outerjoin(AgentPresence, AgentPresence.user_id == User.id)
        .where(User.organization_id == me.organization_id)
        .order_by(User.name, User.id)
    ).all()
    return [AgentView(r.id, r.name, r.email, r.role, r.status, r.state or "OFFLINE", r.last_heartbeat_at,
                      int(r.open), int(r.max_concurrent)) for r in rows]


def customer_names(uow: UnitOfWork, actor: Actor, conversation_ids: list[int]) -> dict[int, str]:
    """The customer's name of each conversation (for the analytics drill-down, whose warehouse rows
    carry no contact data): only conversations of the actor's organization on channels the actor may
    view; others are simply absent. Any number of ids (read ``NAMES_PER_STATEMENT`` at a time)."""
    actor = require(uow, actor, Action.VIEW_ANALYTICS)
    ids = sorted({int(i) for i in conversation_ids})
    if not ids:
        return {}
    visible = visible_channel_ids(uow, actor)
    names: dict[int, str] = {}
    for at in range(0, len(ids), NAMES_PER_STATEMENT):
        conds: list[Any] = [Conversation.organization_id == actor.organization_id,
                            Conversation.id.in_(ids[at:at + NAMES_PER_STATEMENT])]
        if visible is not None:
            conds.append(Conversation.channel_id.in_(sorted(visible)))
        rows = uow.session.execute(
            select(Conversation.id, Contact.display_name, Contact.username, Contact.phone,
                   Contact.provider_contact_id)
            .join(Contact, Contact.id == Conversation.contact_id).where(*conds)
        ).all()
        names.update({r.id: contact_label(r.display_name, r.username, r.phone, r.provider_contact_id)
                      for r in rows})
    return names
