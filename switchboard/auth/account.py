"""Self-service for the signed-in user: change password, new recovery codes, sign out everywhere.

Each needs the current password where it changes a credential; nothing here commits (the page does).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from switchboard.auth import audit, recovery_codes
from switchboard.auth.login_sessions import revoke_all_for_user
from switchboard.auth.passwords import hash_password, verify_password
from switchboard.clock import utcnow
from switchboard.db.schema import User
from switchboard.errors import AuthError, InvalidInput, PermissionDenied
from switchboard.policy import verify_actor
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


def _own_account(uow: UnitOfWork, actor: Actor, password: str, refused: str) -> User:
    """The actor's own user row (locked), if ``password`` is its current password; else AuthError(refused)."""
    actor = verify_actor(uow, actor)
    if actor.is_system:
        raise PermissionDenied("the system actor has no account of its own")
    user = uow.session.execute(select(User).where(User.id == actor.user_id).with_for_update()).scalar_one()
    if not verify_password(user.password_hash, password or ""):
        raise AuthError(refused)
    return user


def change_password(uow: UnitOfWork, actor: Actor, current_password: str, new_password: str,
                    now: datetime | None = None, *, keep_token: str | None = None) -> int:
    """Replace the password (needs the current one); other login sessions end. Returns how many ended."""
    now = now or utcnow()
    user = _own_account(uow, actor, current_password, "wrong current password: the password was not changed")
    if new_password == current_password:
        raise InvalidInput("the new password must differ from the current one")
    new_hash = hash_password(new_password)  # checks the minimum length
    uow.session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash, updated_at=now))
    ended = revoke_all_for_user(uow, user.id, now, except_token=keep_token)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                       action=audit.PASSWORD_CHANGED, target=user.email, details={"sessions_ended": ended},
                       now=now)
    return ended


def regenerate_recovery_codes(
    uow: UnitOfWork, actor: Actor, password: str, now: datetime | None = None
) -> list[str]:
    """Replace the signed-in user's recovery codes (needs the current password); the old ones stop working."""
    now = now or utcnow()
    user = _own_account(uow, actor, password, "wrong password: recovery codes were not changed")
    if not user.totp_enabled:
        raise AuthError("set up two-factor authentication first")
    codes = recovery_codes.replace_codes(uow, user.id, now)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                       action=audit.RECOVERY_CODES_REGENERATED, target=user.email, now=now)
    return codes


def recovery_codes_left(uow: UnitOfWork, actor: Actor) -> int:
    return recovery_codes.remaining(uow, verify_actor(uow, actor).user_id)
