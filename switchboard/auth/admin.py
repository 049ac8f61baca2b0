"""Admin actions on users: list, disable/enable, unlock, reset TOTP, change role, channel permissions.

Every action checks the actor (admin of the same organization; managers may set channel permissions)
and writes an audit row. Disabling a user or resetting their TOTP ends their sessions at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from switchboard.auth import audit, totp
from switchboard.auth.login_sessions import revoke_all_for_user
from switchboard.auth.users import UserView, user_view
from switchboard.clock import utcnow
from switchboard.db.schema import ROLES, Channel, ChannelPermission, RecoveryCode, User
from switchboard.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from switchboard.policy import Action, require, require_organization
from switchboard.services.channels import grant_channel_permission
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
    stmt = select(User).where(User.organization_id == actor.organization_id).order_by(User.name, User.id)
    if not include_disabled:
        stmt = stmt.where(User.status != "disabled")
    return [user_view(u) for u in uow.session.execute(stmt).scalars()]


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
    revoked = revoke_all_for_user(uow, user.id, now, commit=False)
    if user.status != "disabled":
        uow.session.execute(update(User).where(User.id == user.id).values(status="disabled", updated_at=now))
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                           action=audit.USER_DISABLED, target=user.email,
                           details={"sessions_revoked": revoked}, now=now)
    uow.commit()
    return user_view(user)


def enable_user(uow: UnitOfWork, actor: Actor, user_id: int, now: datetime | None = None) -> UserView:
    """Re-activate a disabled account (an account that never accepted its invite stays invited)."""
    actor = require(uow, actor, Action.MANAGE_USERS)
    now = now or utcnow()
    user = _target(uow, actor, user_id)
    if user.status == "disabled":
        status = "active" if user.password_hash else "invited"
        uow.session.execute(update(User).where(User.id == user.id).values(
            status=status, failed_attempts=0, locked_until=None, updated_at=now))
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                           action=audit.USER_ENABLED, target=user.email, details={"status": status}, now=now)
    uow.commit()
    return user_view(user)


def unlock_user(uow: UnitOfWork, actor: Actor, user_id: int, now: datetime | None = None) -> UserView:
    """Lift a lockout before it runs out."""
    actor = require(uow, actor, Action.MANAGE_USERS)
    now = now or utcnow()
    user = _target(uow, actor, user_id)
    if user.locked_until is not None or user.failed_attempts:
        uow.session.execute(update(User).where(User.id == user.id).values(failed_attempts=0, locked_until=None))
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                           action=audit.USER_UNLOCKED, target=user.email, now=now)
    uow.commit()
    return user_view(user)


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
    revoked = revoke_all_for_user(uow, user.id, now, commit=False)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                       action=audit.TOTP_RESET, target=user.email, details={"sessions_revoked": revoked},
                       now=now)
    uow.commit()
    return user_view(user)


def change_role(uow: UnitOfWork, actor: Actor, user_id: int, role: str,
                now: datetime | None = None) -> UserView:
    """Set admin / manager / agent; the last active admin cannot be demoted. Open sessions see it at once."""
    actor = require(uow, actor, Action.MANAGE_USERS)
    now = now or utcnow()
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    user = _target(uow, actor, user_id)
    if user.role == role:
        uow.rollback()
        return user_view(user)
    if user.role == "admin" and user.status == "active" and _other_active_admins(uow, user) == 0:
        raise Conflict("cannot demote the last active admin")
    old = user.role
    uow.session.execute(update(User).where(User.id == user.id).values(role=role, updated_at=now))
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                       action=audit.ROLE_CHANGED, target=user.email, details={"from": old, "to": role}, now=now)
    uow.commit()
    return user_view(user)


def revoke_user_sessions(uow: UnitOfWork, actor: Actor, user_id: int, now: datetime | None = None) -> int:
    """Sign a user out everywhere (admins, or the user themself)."""
    now = now or utcnow()
    if actor.user_id != user_id:
        actor = require(uow, actor, Action.MANAGE_USERS)
    user = _target(uow, actor, user_id)
    count = revoke_all_for_user(uow, user.id, now, commit=False)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=actor.user_id,
                       action=audit.SESSIONS_REVOKED, target=user.email, details={"count": count}, now=now)
    uow.commit()
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


def set_channel_permission(uow: UnitOfWork, actor: Actor, *, user_id: int, channel_id: int, can_view: bool,
                           can_send: bool, now: datetime | None = None) -> None:
    """Grant or withdraw {view, send} on one channel (send implies view); audited."""
    actor = require(uow, actor, Action.MANAGE_PERMISSIONS)
    now = now or utcnow()
    user = _target(uow, actor, user_id)
    channel = uow.session.get(Channel, channel_id)
    if channel is None or channel.organization_id != actor.organization_id:
        raise NotFound(f"channel {channel_id} not found in this organization")
    audit.record_audit(uow, organization_id=actor.organization_id, actor_user_id=actor.user_id,
                       action=audit.PERMISSION_CHANGED, target=user.email,
                       details={"channel_id": channel_id, "channel": channel.key,
                                "can_view": bool(can_view or can_send), "can_send": bool(can_send)}, now=now)
    grant_channel_permission(uow, actor, user_id=user_id, channel_id=channel_id, can_view=can_view,
                             can_send=can_send)  # commits


def set_channel_permissions(uow: UnitOfWork, actor: Actor, user_id: int,
                            permissions: dict[int, tuple[bool, bool]], now: datetime | None = None) -> int:
    """Apply several ``{channel_id: (can_view, can_send)}`` changes (only those that differ). Returns how many."""
    current = {a.channel_id: (a.can_view, a.can_send) for a in user_channel_grants(uow, actor, user_id)}
    changed = 0
    for channel_id, (view, send) in permissions.items():
        wanted = (bool(view or send), bool(send))
        if current.get(channel_id) == wanted:
            continue
        set_channel_permission(uow, actor, user_id=user_id, channel_id=channel_id, can_view=wanted[0],
                               can_send=wanted[1], now=now)
        changed += 1
    return changed
