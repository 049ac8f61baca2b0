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
* An HTTP API key acts in its organization (:meth:`Actor.for_api_key`) with exactly the actions its
  scopes grant (:data:`SCOPE_ACTIONS`), never more, and only on its channels when it is restricted to
  some (a channel outside them is refused, one of another organization is not found). Its key row is
  re-read on every check, so a key revoked or expired a second ago is refused at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, select

from switchboard.clock import utcnow
from switchboard.db.schema import API_SCOPES, ApiKey, Channel, ChannelPermission, User
from switchboard.errors import NotFound, PermissionDenied
from switchboard.types import Actor, Role
from switchboard.uow import UnitOfWork


class Action(StrEnum):
    """What a role may do; the value reads in a refusal: "only … may <value>"."""

    WORK_INBOX = "work in the inbox"
    ASSIGN = "assign and reassign conversations"
    VIEW_ANALYTICS = "read the analytics"
    VIEW_TEAM = "see the team"
    MANAGE_TEAM = "set how many conversations each agent takes"
    MANAGE_PERMISSIONS = "change channel permissions"
    MANAGE_OUTBOX = "manage the outbox"
    MANAGE_SAVED_REPLIES = "manage saved replies"
    MANAGE_USERS = "manage users"
    MANAGE_CHANNELS = "manage channels"
    MANAGE_ORGANIZATION = "change the organization's settings"
    VIEW_AUDIT_LOG = "read the audit log"
    VIEW_OPERATIONS = "see channels and health"
    # what the HTTP API does; people hold them through their role, keys through their scopes
    SEND_MESSAGES = "send messages"
    READ_MESSAGES = "read messages"
    READ_CONVERSATIONS = "read conversations"
    WRITE_CONVERSATIONS = "assign and complete conversations"
    READ_CONTACTS = "read contacts"
    MANAGE_WEBHOOKS = "manage event webhooks"
    MANAGE_API_KEYS = "manage API keys"


_AGENT = frozenset({Action.WORK_INBOX, Action.SEND_MESSAGES, Action.READ_MESSAGES, Action.READ_CONVERSATIONS,
                    Action.WRITE_CONVERSATIONS, Action.READ_CONTACTS})
_MANAGER = _AGENT | {Action.ASSIGN, Action.VIEW_ANALYTICS, Action.VIEW_TEAM, Action.MANAGE_TEAM,
                     Action.MANAGE_PERMISSIONS, Action.MANAGE_OUTBOX, Action.MANAGE_SAVED_REPLIES}
_ADMIN = frozenset(Action)

ROLE_ACTIONS: Mapping[Role, frozenset[Action]] = {"admin": _ADMIN, "manager": _MANAGER, "agent": _AGENT}

# What an API key's scopes grant (a key holds no role): the whole list of what a key can ever do.
SCOPE_ACTIONS: Mapping[str, frozenset[Action]] = {
    "messages:send": frozenset({Action.SEND_MESSAGES}),
    "messages:read": frozenset({Action.READ_MESSAGES}),
    "conversations:read": frozenset({Action.READ_CONVERSATIONS}),
    "conversations:write": frozenset({Action.WRITE_CONVERSATIONS, Action.ASSIGN}),
    "contacts:read": frozenset({Action.READ_CONTACTS}),
    "webhooks:manage": frozenset({Action.MANAGE_WEBHOOKS}),
}
assert tuple(SCOPE_ACTIONS) == API_SCOPES, "a scope without its actions (or the reverse)"


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


def scope_refusal(scopes: frozenset[str], action: Action) -> str | None:
    """The sentence refusing ``action`` to an API key with ``scopes``, or None when a scope grants it."""
    if any(action in SCOPE_ACTIONS.get(s, frozenset()) for s in scopes):
        return None
    needed = [s for s, actions in SCOPE_ACTIONS.items() if action in actions]
    if not needed:
        return f"API keys may not {action.value}"
    return f"this API key may not {action.value}: it needs the scope {' or '.join(map(repr, needed))}"


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


def key_refusal(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> str | None:
    """Why an API key may no longer be used (revoked, expired), or None."""
    if revoked_at is not None:
        return "the API key was revoked"
    if expires_at is not None and expires_at <= now:
        return "the API key has expired"
    return None


def actor_for_api_key(uow: UnitOfWork, api_key_id: int, now: datetime | None = None) -> Actor:
    """The Actor of a usable API key (its current scopes and channels); refuses a revoked or expired one."""
    row = uow.session.execute(
        select(ApiKey.organization_id, ApiKey.prefix, ApiKey.scopes, ApiKey.channel_ids, ApiKey.revoked_at,
               ApiKey.expires_at).where(ApiKey.id == api_key_id)).first()
    if row is None:
        raise NotFound(f"API key {api_key_id} does not exist")
    reason = key_refusal(row.revoked_at, row.expires_at, now or utcnow())
    if reason is not None:
        raise PermissionDenied(reason)
    channels = None if row.channel_ids is None else frozenset(int(c) for c in row.channel_ids)
    return Actor.for_api_key(api_key_id, row.organization_id, row.prefix, frozenset(row.scopes), channels)


def verify_actor(uow: UnitOfWork, actor: Actor) -> Actor:
    """The actor as the database knows it now (the role may have changed); refuses disabled users."""
    if actor.is_system:
        return actor
    fresh = (actor_for_api_key(uow, actor.api_key_id) if actor.api_key_id is not None
             else actor_for_user(uow, actor.user_id))
    if fresh.organization_id != actor.organization_id:
        raise PermissionDenied("your session belongs to another organization; sign in again")
    return fresh


def require(uow: UnitOfWork, actor: Actor, action: Action) -> Actor:
    """The verified actor, if its current role grants ``action``; otherwise PermissionDenied."""
    return check_allowed(verify_actor(uow, actor), action)


def check_allowed(actor: Actor, action: Action) -> Actor:
    """The actor, if it holds ``action`` (a person by role, a key by scopes); otherwise PermissionDenied.
    Pure: for an actor verified a moment ago (the API authenticates each request's key first)."""
    reason = scope_refusal(actor.scopes, action) if actor.is_api_key else refusal(actor.role, action)
    if reason is not None:
        raise PermissionDenied(reason)
    return actor


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
        return ChannelAccess(actor, channel_id, _channel_key(uow, actor, channel_id), True, True)
    if actor.is_api_key:
        fresh = verify_actor(uow, actor)
        key = _channel_key(uow, fresh, channel_id)
        if fresh.channel_ids is not None and channel_id not in fresh.channel_ids:
            raise PermissionDenied(f"this API key is restricted to other channels than '{key}'")
        return ChannelAccess(fresh, channel_id, key, True, scope_refusal(fresh.scopes, Action.SEND_MESSAGES) is None)
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


def _channel_key(uow: UnitOfWork, actor: Actor, channel_id: int) -> str:
    """The key of a channel of the actor's organization (NotFound for any other)."""
    channel = uow.session.execute(
        select(Channel.organization_id, Channel.key).where(Channel.id == channel_id)).first()
    if channel is None or channel.organization_id != actor.organization_id:
        raise NotFound(f"channel {channel_id} not found in your organization")
    return str(channel.key)


def visible_channel_ids(uow: UnitOfWork, actor: Actor) -> set[int] | None:
    """Channels the actor may view; ``None`` means every channel of the organization (admin/manager,
    an API key without a channel restriction)."""
    fresh = verify_actor(uow, actor)
    if fresh.is_api_key:
        return None if fresh.channel_ids is None else set(fresh.channel_ids)
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
