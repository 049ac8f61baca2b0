"""The one access policy: who may see and do what. Every entrypoint's services go through it.

Rules (SPEC §3):

* Every row belongs to one organization; a caller never sees another organization's rows. Those look
  exactly like rows that do not exist (:class:`~switchboard.errors.NotFound`), so an id never reveals
  that it exists elsewhere.
* Roles grant actions (:data:`ROLE_ACTIONS`): agents work the inbox; managers also assign, set channel
  permissions and read analytics; admins also manage users, channels, the organization and the audit
  log. The app's navigation is derived from the same table (:func:`allows`), so a page is offered
  exactly when its service would let the user in — and the service checks again.
* Admins and managers see every channel of their organization; agents see the channels on which they
  hold ``view`` and may send only where they hold ``send`` (``send`` implies ``view``).
* A person's actor is re-read from the database on every check (role, status, organization), so a user
  disabled or demoted a second ago is refused at once, with a sentence that says why.
* Flows and the CLI act as the organization's **system actor** (:meth:`Actor.system`): all actions
  within that one organization, no user row, ``acting_user_id`` None in events and audit entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import and_, select

from switchboard.db.schema import Channel, ChannelPermission, User
from switchboard.errors import NotFound, PermissionDenied
from switchboard.types import Actor, Role
from switchboard.uow import UnitOfWork


class Action(StrEnum):
    """What a role may do; the value reads in a refusal: "only … may <value>"."""

    WORK_INBOX = "work in the inbox"
    ASSIGN = "assign and reassign conversations"
    VIEW_ANALYTICS = "read the analytics"
    VIEW_TEAM = "see the team"
    MANAGE_PERMISSIONS = "change channel permissions"
    MANAGE_OUTBOX = "manage the outbox"
    MANAGE_SAVED_REPLIES = "manage saved replies"
    MANAGE_USERS = "manage users"
    MANAGE_CHANNELS = "manage channels"
    MANAGE_ORGANIZATION = "change the organization's settings"
    VIEW_AUDIT_LOG = "read the audit log"
    VIEW_OPERATIONS = "see channels and health"
    ERASE_CONTACTS = "erase a contact's personal data"


_AGENT = frozenset({Action.WORK_INBOX})
_MANAGER = _AGENT | {Action.ASSIGN, Action.VIEW_ANALYTICS, Action.VIEW_TEAM, Action.MANAGE_PERMISSIONS,
                     Action.MANAGE_OUTBOX, Action.MANAGE_SAVED_REPLIES}
_ADMIN = frozenset(Action)

ROLE_ACTIONS: Mapping[Role, frozenset[Action]] = {"admin": _ADMIN, "manager": _MANAGER, "agent": _AGENT}


def allows(role: Role, action: Action) -> bool:
    """Does ``role`` grant ``action``? Pure: for navigation and buttons (services use :func:`require`)."""
    return action in ROLE_ACTIONS.get(role, frozenset())


def refusal(role: Role, action: Action) -> str | None:
    """The sentence refusing ``action`` to ``role`` ("only admins may manage users; you are a manager"),
    or None when the role grants it."""
    if allows(role, action):
        return None
    who = " and ".join(r + "s" for r, actions in ROLE_ACTIONS.items() if action in actions)
    article = "an" if role[0] in "aeiou" else "a"
    return f"only {who} may {action.value}; you are {article} {role}"


# --- the actor ------------------------------------------------------------------------------------

def actor_for_user(uow: UnitOfWork, user_id: int) -> Actor:
    """The Actor of an active user (entrypoints call this after login, or for a CLI ``--as`` user)."""
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
    """The actor as the database knows it now (the role may have changed); refuses disabled users."""
    if actor.is_system:
        return actor
    fresh = actor_for_user(uow, actor.user_id)
    if fresh.organization_id != actor.organization_id:
        raise PermissionDenied("your session belongs to another organization; sign in again")
    return fresh


def require(uow: UnitOfWork, actor: Actor, action: Action) -> Actor:
    """The verified actor, if its current role grants ``action``; otherwise PermissionDenied."""
    fresh = verify_actor(uow, actor)
    reason = refusal(fresh.role, action)
    if reason is not None:
        raise PermissionDenied(reason)
    return fresh


def require_organization(actor: Actor, organization_id: int | None, what: str) -> None:
    """Rows of another organization do not exist for the actor: NotFound, never 'forbidden'."""
    if organization_id is None or organization_id != actor.organization_id:
        raise NotFound(f"{what} not found in your organization")


# --- channels -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ChannelAccess:
    """The verified actor and its rights on one channel."""

    actor: Actor
    channel_id: int
    channel_key: str
    can_view: bool
    can_send: bool


def channel_access(uow: UnitOfWork, actor: Actor, channel_id: int) -> ChannelAccess:
    """One query: the actor's current role and status and its permission row on the channel."""
    if actor.is_system:
        channel = uow.session.execute(
            select(Channel.organization_id, Channel.key).where(Channel.id == channel_id)).first()
        if channel is None or channel.organization_id != actor.organization_id:
            raise NotFound(f"channel {channel_id} not found in your organization")
        return ChannelAccess(actor, channel_id, channel.key, True, True)
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
        raise PermissionDenied("your session belongs to another organization; sign in again")
    if row.channel_org is None or row.channel_org != row.organization_id:
        raise NotFound(f"channel {channel_id} not found in your organization")
    fresh = Actor(actor.user_id, row.organization_id, row.role, row.email)
    if fresh.is_manager:
        return ChannelAccess(fresh, channel_id, row.key, True, True)
    can_send = bool(row.can_send)
    return ChannelAccess(fresh, channel_id, row.key, bool(row.can_view) or can_send, can_send)


def visible_channel_ids(uow: UnitOfWork, actor: Actor) -> set[int] | None:
    """Channels the actor may view; ``None`` means every channel of the organization (admin/manager)."""
    fresh = verify_actor(uow, actor)
    if fresh.is_manager:
        return None
    rows = uow.session.execute(
        select(ChannelPermission.channel_id)
        .join(Channel, Channel.id == ChannelPermission.channel_id)
        .where(
            ChannelPermission.user_id == fresh.user_id,
            (ChannelPermission.can_view.is_(True)) | (ChannelPermission.can_send.is_(True)),
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
    acc = require_view(uow, actor, channel_id)
    if not acc.can_send:
        raise PermissionDenied(f"you have no 'send' permission on channel '{acc.channel_key}'")
    return acc


def can_view_channel(uow: UnitOfWork, actor: Actor, channel_id: int) -> bool:
    try:
        return channel_access(uow, actor, channel_id).can_view
    except (NotFound, PermissionDenied):
        return False


def can_send_channel(uow: UnitOfWork, actor: Actor, channel_id: int) -> bool:
    try:
        return channel_access(uow, actor, channel_id).can_send
    except (NotFound, PermissionDenied):
        return False
