"""Admin actions on users: list, disable/enable, unlock, reset TOTP, change role, channel permissions.

Every action checks the actor through :func:`switchboard.policy.require` (MANAGE_USERS, MANAGE_PERMISSIONS,
VIEW_TEAM; another organization's users and channels do not exist for it) and writes an audit row in
the same transaction. Nothing here commits: the page (``app/deps.call``) or the CLI does, once.
Disabling a user or resetting their TOTP ends their login sessions at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.auth import audit, totp
from switchboard.auth.login import clear_attempts
from switchboard.auth.login_sessions import revoke_all_for_user
from switchboard.auth.users import UserView, user_view, user_views
from switchboard.clock import utcnow
from switchboard.db.schema import ROLES, Channel, ChannelPermission, RecoveryCode, User
from switchboard.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from switchboard.policy import Action, require, require_organization, verify_actor
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class ChannelGrant:
    """One channel and what a given user may do on it (for the permission editor)."""

    channel_id: int
    channel_key: str
    channel_name: str
    provider: str
    can_view: bool
    can_send: bool


def list_users(uow: UnitOfWork, actor: Actor, *, include_disabled: bool = True) -> list[UserView]:
    """Users of the actor's organization (admins and managers)."""
    actor = require(uow, actor, Action.VIEW_TEAM)
    where = [User.organization_id == actor.organization_id]
    if not include_disabled:
        where.append(User.status != "disabled")
    return user_views(uow, *where)


def _target(uow: UnitOfWork, actor: Actor, user_id: int) -> User:
    user = uow.session.execute(select(User).where(User.id == user_id).with_for_update()).scalar_one_or_none()
    if user is None or user.organization_id != actor.organization_id:
        raise NotFound(f"user {user_id} not found in this organization")
    return user


def _other_active_admins(uow: UnitOfWork, user: User) -> int:
    return int(uow.session.execute(
        select(func.count()).select_from(User).where(
            User.organization_id == user.organization_id, User.role == "admin", User.status == "active",
            User.id != user.id)
    ).scalar_one())


def disable_user(uow: UnitOfWork, actor: Actor, user_id: int, now: datetime | None = None) -> UserView:
    """Disable an account and end all its sessions immediately (idempotent)."""
    actor = require(uow, actor, Action.MANAGE_USERS)
    now = now or utcnow()
    user = _target(uow, actor, user_id)
    if user.id == actor.user_id:
        raise PermissionDenied("you cannot disable your own account")
    if user.role == "admin" and user.status == "active" and _other_active_admins(uow, user) == 0:
        raise Conflict("cannot disable the last active admin")
    revoked = revoke_all_for_user(uow, user.id, now)
    if user.status != "disabled":
        uow.session.execute(update(User).where(User.id == user.id).values(status="disabled", updated_at=now))
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                           action=audit.USER_DISABLED, target=user.email,
                           details={"sessions_revoked": revoked}, now=now)
    return user_view(uow, user.id)


def enable_user(uow: UnitOfWork, actor: Actor, user_id: int, now: datetime | None = None) -> UserView:
    """Re-activate a disabled account (an account that never accepted its invite stays invited)."""
    actor = require(uow, actor, Action.MANAGE_USERS)
    now = now or utcnow()
    user = _target(uow, actor, user_id)
    if user.status == "disabled":
        status = "active" if user.password_hash else "invited"
        uow.session.execute(update(User).where(User.id == user.id).values(status=status, updated_at=now))
        clear_attempts(uow, user.email)
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                           action=audit.USER_ENABLED, target=user.email, details={"status": status}, now=now)
    return user_view(uow, user.id)


def unlock_user(uow: UnitOfWork, actor: Actor, user_id: int, now: datetime | None = None) -> UserView:
    """Lift a lockout before it runs out, and forget the failed attempts counted for the user's address."""
    actor = require(uow, actor, Action.MANAGE_USERS)
    now = now or utcnow()
    user = _target(uow, actor, user_id)
    if clear_attempts(uow, user.email):
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                           action=audit.USER_UNLOCKED, target=user.email, now=now)
    return user_view(uow, user.id)


def reset_totp(uow: UnitOfWork, actor: Actor, user_id: int, now: datetime | None = None, *,
               secret_key: bytes | None = None) -> UserView:
    """Forget the user's authenticator and recovery codes: they enroll again at next login.

    Their sessions end at once. A new secret replaces the old one, so an old phone is useless.
    """
    actor = require(uow, actor, Action.MANAGE_USERS)
    now = now or utcnow()
    secret_key = secret_key or get_settings().secret_key_bytes()
    user = _target(uow, actor, user_id)
    uow.session.execute(update(User).where(User.id == user.id).values(
        totp_enabled=False, totp_last_step=None, updated_at=now,
        totp_secret_enc=totp.encrypt_secret(secret_key, user.id, totp.new_secret())))
    uow.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    revoked = revoke_all_for_user(uow, user.id, now)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                       action=audit.TOTP_RESET, target=user.email, details={"sessions_revoked": revoked},
                       now=now)
    return user_view(uow, user.id)


def change_role(uow: UnitOfWork, actor: Actor, user_id: int, role: str,
                now: datetime | None = None) -> UserView:
    """Set admin / manager / agent; the last active admin cannot be demoted. Open sessions see it at once."""
    actor = require(uow, actor, Action.MANAGE_USERS)
    now = now or utcnow()
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    user = _target(uow, actor, user_id)
    if user.role == role:
        return user_view(uow, user.id)
    if user.role == "admin" and user.status == "active" and _other_active_admins(uow, user) == 0:
        raise Conflict("cannot demote the last active admin")
    old = user.role
    uow.session.execute(update(User).where(User.id == user.id).values(role=role, updated_at=now))
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                       action=audit.ROLE_CHANGED, target=user.email, details={"from": old, "to": role}, now=now)
    return user_view(uow, user.id)


def revoke_user_sessions(uow: UnitOfWork, actor: Actor, user_id: int, now: datetime | None = None) -> int:
    """Sign a user out everywhere (admins, or the user themself)."""
    now = now or utcnow()
    if actor.is_system or actor.user_id != user_id:
        actor = require(uow, actor, Action.MANAGE_USERS)
    else:
        actor = verify_actor(uow, actor)
    user = _target(uow, actor, user_id)
    count = revoke_all_for_user(uow, user.id, now)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.acting_user_id,
                       action=audit.SESSIONS_REVOKED, target=user.email, details={"count": count}, now=now)
    return count


def user_channel_grants(uow: UnitOfWork, actor: Actor, user_id: int) -> list[ChannelGrant]:
    """Every channel of the organization with the user's {view, send} (admins/managers: implicit all)."""
    actor = require(uow, actor, Action.MANAGE_PERMISSIONS)
    user = uow.session.get(User, user_id)
    require_organization(actor, None if user is None else user.organization_id, f"user {user_id}")
    assert user is not None
    rows = uow.session.execute(
        select(Channel.id, Channel.key, Channel.name, Channel.provider, ChannelPermission.can_view,
               ChannelPermission.can_send)
        .outerjoin(ChannelPermission, (ChannelPermission.channel_id == Channel.id)
                   & (ChannelPermission.user_id == user_id))
        .where(Channel.organization_id == user.organization_id)
        .order_by(Channel.name, Channel.id)
    ).all()
    implicit = user.role in ("admin", "manager")
    return [ChannelGrant(r[0], r[1], r[2], r[3], implicit or bool(r[4]), implicit or bool(r[5])) for r in rows]


def _grant(uow: UnitOfWork, actor: Actor, user: User, channel_id: int, can_view: bool, can_send: bool,
           now: datetime) -> None:
    channel = uow.session.get(Channel, channel_id)
    require_organization(actor, None if channel is None else channel.organization_id, f"channel {channel_id}")
    assert channel is not None
    audit.record_audit(uow, organization_id=actor.organization_id, actor_user_id=actor.acting_user_id,
                       action=audit.PERMISSION_CHANGED, target=user.email,
                       details={"channel_id": channel_id, "channel": channel.key, "can_view": can_view,
                                "can_send": can_send}, now=now)
    row = {"user_id": user.id, "channel_id": channel_id, "can_view": can_view, "can_send": can_send}
    stmt = pg_insert(ChannelPermission).values(row)
    uow.session.execute(stmt.on_conflict_do_update(
        index_elements=[ChannelPermission.user_id, ChannelPermission.channel_id],
        set_={"can_view": stmt.excluded.can_view, "can_send": stmt.excluded.can_send}))


def set_channel_permissions(uow: UnitOfWork, actor: Actor, user_id: int,
                            permissions: dict[int, tuple[bool, bool]], now: datetime | None = None) -> int:
    """Apply ``{channel_id: (can_view, can_send)}`` (send implies view; only what differs), each change
    audited. One Save is one transaction: a channel that is not the organization's (NotFound) leaves
    nothing written. Returns how many channels changed."""
    actor = require(uow, actor, Action.MANAGE_PERMISSIONS)
    now = now or utcnow()
    user = _target(uow, actor, user_id)
    current = {g.channel_id: (g.can_view, g.can_send) for g in user_channel_grants(uow, actor, user_id)}
    changed = 0
    for channel_id, (view, send) in permissions.items():
        wanted = (bool(view or send), bool(send))
        if current.get(channel_id) != wanted:
            _grant(uow, actor, user, channel_id, *wanted, now)
            changed += 1
    return changed


def set_channel_permission(uow: UnitOfWork, actor: Actor, *, user_id: int, channel_id: int, can_view: bool,
                           can_send: bool, now: datetime | None = None) -> int:
    """Grant or withdraw {view, send} on one channel (send implies view); audited. 1 if it changed."""
    return set_channel_permissions(uow, actor, user_id, {channel_id: (can_view, can_send)}, now)
