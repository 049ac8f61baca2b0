"""Who may see and do what, enforced in the services (SPEC §3, issue 3).

* Every row belongs to one organization; a caller never sees another organization's rows (those
  look exactly like rows that do not exist: ``NotFound``).
* Admins and managers see every channel of their organization; agents see the channels on which they
  hold ``view`` and may send only where they hold ``send``.
* The actor is re-checked against the database on every call (role, status, organization), so a user
  disabled or demoted a second ago is refused at once, with a sentence that says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select

from switchboard.db.schema import Channel, ChannelPermission, User
from switchboard.errors import NotFound, PermissionDenied
from switchboard.types import Actor, Role
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class ChannelAccess:
    """The verified actor and its rights on one channel."""

    actor: Actor
    channel_id: int
    channel_key: str
    can_view: bool
    can_send: bool


def actor_for_user(uow: UnitOfWork, user_id: int) -> Actor:
    """Build the Actor of an active user (entry points call this after login / for the CLI)."""
    row = uow.session.execute(
        select(User.id, User.organization_id, User.role, User.email, User.status).where(User.id == user_id)
    ).first()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    if row.status != "active":
        raise PermissionDenied(f"user {row.email} is {row.status}; only active users may act")
    role: Role = row.role
    return Actor(user_id=row.id, organization_id=row.organization_id, role=role, email=row.email)


def verify_actor(uow: UnitOfWork, actor: Actor) -> Actor:
    """The actor as the database knows it now (role may have changed); refuses disabled users."""
    fresh = actor_for_user(uow, actor.user_id)
    if fresh.organization_id != actor.organization_id:
        raise PermissionDenied("your session belongs to another organization; log in again")
    return fresh


def channel_access(uow: UnitOfWork, actor: Actor, channel_id: int) -> ChannelAccess:
    """One query: the actor's current role/status and its permission row on the channel."""
    row = uow.session.execute(
        select(
            User.organization_id,
            User.role,
            User.status,
            User.email,
            Channel.organization_id.label("channel_org"),
            Channel.key,
            ChannelPermission.can_view,
            ChannelPermission.can_send,
        )
        .select_from(User)
        .outerjoin(Channel, Channel.id == channel_id)
        .outerjoin(
            ChannelPermission,
            and_(ChannelPermission.user_id == User.id, ChannelPermission.channel_id == channel_id),
        )
        .where(User.id == actor.user_id)
    ).first()
    if row is None:
        raise NotFound(f"user {actor.user_id} does not exist")
    if row.status != "active":
        raise PermissionDenied(f"user {row.email} is {row.status}; only active users may act")
    if row.organization_id != actor.organization_id:
        raise PermissionDenied("your session belongs to another organization; log in again")
    if row.channel_org is None or row.channel_org != row.organization_id:
        raise NotFound(f"channel {channel_id} not found in your organization")
    fresh = Actor(actor.user_id, row.organization_id, row.role, row.email)
    if fresh.is_manager:
        return ChannelAccess(fresh, channel_id, row.key, True, True)
    return ChannelAccess(fresh, channel_id, row.key, bool(row.can_view), bool(row.can_send))


def visible_channel_ids(uow: UnitOfWork, actor: Actor) -> set[int] | None:
    """Channels the actor may view; ``None`` means all channels of the organization (admin/manager)."""
    fresh = verify_actor(uow, actor)
    if fresh.is_manager:
        return None
    rows = uow.session.execute(
        select(ChannelPermission.channel_id)
        .join(Channel, Channel.id == ChannelPermission.channel_id)
        .where(
            ChannelPermission.user_id == fresh.user_id,
            ChannelPermission.can_view.is_(True),
            Channel.organization_id == fresh.organization_id,
        )
    ).scalars()
    return {int(r) for r in rows}


def require_view(uow: UnitOfWork, actor: Actor, channel_id: int) -> ChannelAccess:
    acc = channel_access(uow, actor, channel_id)
    if not acc.can_view:
        raise PermissionDenied(f"you have no 'view' permission on channel '{acc.channel_key}'")
    return acc


def require_send(uow: UnitOfWork, actor: Actor, channel_id: int) -> ChannelAccess:
    acc = channel_access(uow, actor, channel_id)
    if not acc.can_view:
        raise PermissionDenied(f"you have no 'view' permission on channel '{acc.channel_key}'")
    if not acc.can_send:
        raise PermissionDenied(f"you have no 'send' permission on channel '{acc.channel_key}'")
    return acc


def require_manager(uow: UnitOfWork, actor: Actor, what: str) -> Actor:
    fresh = verify_actor(uow, actor)
    if not fresh.is_manager:
        raise PermissionDenied(f"only admins and managers may {what}; you are an {fresh.role}")
    return fresh
