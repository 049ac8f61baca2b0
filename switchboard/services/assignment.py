"""Auto-assignment: round-robin of waiting conversations to online agents (per organization, opt-in).

Eligible agents are active users with role ``agent`` whose presence is ONLINE, who may view the
conversation's channel and hold fewer ASSIGNED conversations than their ``max_concurrent``. The agent
assigned longest ago goes first (``users.last_assigned_at``). Oldest waiting conversations go first.
The assignment is written as an ACCEPTED event with ``data.via = "auto_assign"`` (queue time ends
there, like a manual accept). Calls for one organization are serialized with a transaction-level
advisory lock; conversations are claimed with ``FOR UPDATE SKIP LOCKED`` so an agent accepting by hand at
the same moment never collides with it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text, update

from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.db.schema import AgentPresence, ChannelPermission, Conversation, Organization, User
from switchboard.domain.conversation import ConversationStatus, EventType
from switchboard.errors import InvalidInput
from switchboard.policy import Action, require, require_organization
from switchboard.services.events import NewEvent, append_events
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

_LOCK_CLASS = 730_001  # advisory lock namespace for auto-assignment (second key: organization id)


def assign_pending(uow: UnitOfWork, organization_id: int, *, now: datetime | None = None
                   ) -> list[tuple[int, int]]:
    """Assign what can be assigned now (for every caller that put conversations back in the queue and
    for the maintenance flow). Returns ``(conversation_id, user_id)`` pairs. Does nothing unless the
    organization enabled it.
    """
    now = now or utcnow()
    enabled = uow.session.execute(
        select(Organization.auto_assign).where(Organization.id == organization_id)
    ).scalar()
    if not enabled:
        return []
    uow.session.execute(text("select pg_advisory_xact_lock(:a, :b)"),
                        {"a": _LOCK_CLASS, "b": organization_id})
    open_count = (
        select(func.count())
        .where(Conversation.assigned_user_id == User.id, Conversation.status == ConversationStatus.ASSIGNED)
        .scalar_subquery()
    )
    agents = uow.session.execute(
        select(User.id, User.max_concurrent, User.last_assigned_at, open_count.label("open"))
        .join(AgentPresence, AgentPresence.user_id == User.id)
        .where(User.organization_id == organization_id, User.status == "active", User.role == "agent",
               AgentPresence.state == "ONLINE")
        .order_by(User.last_assigned_at.asc().nullsfirst(), User.id)
    ).all()
    load = {int(a.id): int(a.open) for a in agents}
    capacity = {int(a.id): int(a.max_concurrent) for a in agents}
    if not any(load[u] < capacity[u] for u in load):
        return []
    order = [int(a.id) for a in agents]  # round-robin order: least recently assigned first
    views: dict[int, set[int]] = {u: set() for u in order}
    for uid, cid in uow.session.execute(
        select(ChannelPermission.user_id, ChannelPermission.channel_id).where(
            ChannelPermission.user_id.in_(order), ChannelPermission.can_view.is_(True))
    ):
        views[int(uid)].add(int(cid))
    free = sum(max(0, capacity[u] - load[u]) for u in order)
    pending = uow.session.execute(
        select(Conversation.id, Conversation.channel_id, Conversation.cycle_number)
        .where(Conversation.organization_id == organization_id, Conversation.status == ConversationStatus.PENDING)
        .order_by(func.coalesce(Conversation.cycle_started_at, Conversation.created_at), Conversation.id)
        .limit(max(free * 4, 50))
        .with_for_update(skip_locked=True)
    ).all()
    done: list[tuple[int, int]] = []
    events: list[NewEvent] = []
    for conv in pending:
        pick = next((u for u in order if load[u] < capacity[u] and conv.channel_id in views[u]), None)
        if pick is None:
            continue
        won = uow.session.execute(
            update(Conversation)
            .where(Conversation.id == conv.id, Conversation.status == ConversationStatus.PENDING)
            .values(status=ConversationStatus.ASSIGNED, assigned_user_id=pick, updated_at=now)
            .returning(Conversation.id)
        ).first()
        if won is None:
            continue
        load[pick] += 1
        order.remove(pick)
        order.append(pick)
        done.append((int(conv.id), pick))
        events.append(NewEvent(organization_id, int(conv.id), EventType.ACCEPTED, now, actor_user_id=pick,
                               data={"via": "auto_assign", "cycle": int(conv.cycle_number)}))
        if not any(load[u] < capacity[u] for u in order):
            break
    if done:
        append_events(uow, events)
        uow.session.execute(
            update(User).where(User.id.in_({u for _, u in done})).values(last_assigned_at=now)
        )
    return done


def set_max_concurrent(uow: UnitOfWork, actor: Actor, user_id: int, max_concurrent: int) -> None:
    """Manager: how many conversations auto-assignment may hand to one user at once; audited."""
    actor = require(uow, actor, Action.MANAGE_TEAM)
    if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or not 0 <= max_concurrent <= 1000:
        raise InvalidInput(f"the number of concurrent conversations must be 0 to 1000, not {max_concurrent!r}")
    user = uow.session.execute(select(User.organization_id, User.email, User.max_concurrent)
                               .where(User.id == user_id)).first()
    require_organization(actor, None if user is None else user.organization_id, f"user {user_id}")
    assert user is not None
    if user.max_concurrent == max_concurrent:
        return
    uow.session.execute(update(User).where(User.id == user_id).values(max_concurrent=max_concurrent))
    record_audit(uow, organization_id=actor.organization_id, actor_user_id=actor.acting_user_id,
                 action="user.capacity_changed", target=user.email,
                 details={"max_concurrent": [user.max_concurrent, max_concurrent]})
