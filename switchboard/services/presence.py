"""Agent presence: heartbeats from the app, ONLINE / AWAY / OFFLINE, release after a grace period.

``agent_sessions`` (:class:`AgentPresence`) holds one row per user (latest state and heartbeat). ``presence_events`` is the
append-only history the warehouse computes online minutes from: one row per state change plus at most
one row per clock minute while the state stays the same (a heartbeat landing in a new minute).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import insert, select, update

from switchboard.clock import utcnow
from switchboard.db.schema import PRESENCE_STATES, AgentPresence, Conversation, PresenceEvent
from switchboard.domain.conversation import ConversationStatus, EventType
from switchboard.errors import InvalidInput
from switchboard.policy import verify_actor
from switchboard.services.events import NewEvent, append_events
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def heartbeat(uow: UnitOfWork, actor: Actor, *, state: Literal["ONLINE", "AWAY", "OFFLINE"] = "ONLINE",
              now: datetime | None = None) -> None:
    """Record that the agent is there (or chose AWAY / logged out)."""
    now = now or utcnow()
    if state not in PRESENCE_STATES:
        raise InvalidInput(f"presence state must be one of {', '.join(PRESENCE_STATES)}")
    me = verify_actor(uow, actor)
    cur = uow.session.execute(
        select(AgentPresence.state, AgentPresence.last_heartbeat_at)
        .where(AgentPresence.user_id == me.user_id).with_for_update()
    ).first()
    log = False
    if cur is None:
        uow.session.execute(insert(AgentPresence).values(
            user_id=me.user_id, organization_id=me.organization_id, state=state, started_at=now,
            last_heartbeat_at=now, offline_since=now if state == "OFFLINE" else None))
        log = True
    else:
        changed = cur.state != state
        values: dict[str, object] = {"state": state, "last_heartbeat_at": max(now, cur.last_heartbeat_at)}
        if changed:
            values["offline_since"] = now if state == "OFFLINE" else None
            if cur.state == "OFFLINE":
                values["started_at"] = now
        uow.session.execute(update(AgentPresence).where(AgentPresence.user_id == me.user_id).values(**values))
        log = changed or _minute(now) > _minute(cur.last_heartbeat_at)
    if log:
        uow.session.execute(insert(PresenceEvent).values(
            organization_id=me.organization_id, user_id=me.user_id, state=state, occurred_at=now))
    if state == "ONLINE" and (cur is None or cur.state != "ONLINE"):
        from switchboard.services.assignment import assign_pending

        assign_pending(uow, me.organization_id, now=now)


def sweep(uow: UnitOfWork, *, now: datetime | None = None, away_after_s: int = 120, offline_grace_s: int = 300,
          offline_after_s: int = 300) -> list[int]:
    """Mark silent sessions AWAY (no heartbeat for ``away_after_s``) and OFFLINE (``offline_after_s``);
    agents OFFLINE for ``offline_grace_s`` lose their ASSIGNED conversations (AGENT_DISCONNECTED).
    Returns the released conversation ids (the maintenance flow, for every organization)."""
    now = now or utcnow()
    events: list[dict[str, object]] = []
    for uid, org, st in uow.session.execute(
        update(AgentPresence)
        .where(AgentPresence.state != "OFFLINE",
               AgentPresence.last_heartbeat_at < now - timedelta(seconds=offline_after_s))
        .values(state="OFFLINE", offline_since=now)
        .returning(AgentPresence.user_id, AgentPresence.organization_id, AgentPresence.state)
    ):
        events.append({"organization_id": org, "user_id": uid, "state": st, "occurred_at": now})
    for uid, org, st in uow.session.execute(
        update(AgentPresence)
        .where(AgentPresence.state == "ONLINE",
               AgentPresence.last_heartbeat_at < now - timedelta(seconds=away_after_s))
        .values(state="AWAY")
        .returning(AgentPresence.user_id, AgentPresence.organization_id, AgentPresence.state)
    ):
        events.append({"organization_id": org, "user_id": uid, "state": st, "occurred_at": now})
    if events:
        uow.session.execute(insert(PresenceEvent), events)
    gone = select(AgentPresence.user_id).where(
        AgentPresence.state == "OFFLINE", AgentPresence.offline_since <= now - timedelta(seconds=offline_grace_s))
    released = uow.session.execute(
        select(Conversation.id, Conversation.organization_id, Conversation.cycle_number,
               Conversation.assigned_user_id)
        .where(Conversation.status == ConversationStatus.ASSIGNED, Conversation.assigned_user_id.in_(gone))
        .order_by(Conversation.id)
        .with_for_update(skip_locked=True)
    ).all()
    if released:
        uow.session.execute(
            update(Conversation)
            .where(Conversation.id.in_([r.id for r in released]), Conversation.status == ConversationStatus.ASSIGNED)
            .values(status=ConversationStatus.PENDING, assigned_user_id=None, updated_at=now)
        )
    append_events(uow, [NewEvent(r.organization_id, r.id, EventType.AGENT_DISCONNECTED, now,
                                 actor_user_id=r.assigned_user_id,
                                 data={"from_user_id": r.assigned_user_id, "cycle": r.cycle_number,
                                       "reason": "offline past the grace period"})
                        for r in released])
    if released:
        from switchboard.services.assignment import assign_pending

        for org in sorted({int(r.organization_id) for r in released}):
            assign_pending(uow, org, now=now)
    return sorted(int(r.id) for r in released)
