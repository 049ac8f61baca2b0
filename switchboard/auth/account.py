"""Self-service for the signed-in user: change password, sign out everywhere."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from switchboard.auth import audit
from switchboard.auth.login_sessions import revoke_all_for_user
from switchboard.auth.passwords import hash_password, verify_password
from switchboard.clock import utcnow
from switchboard.db.schema import User
from switchboard.errors import AuthError, InvalidInput, NotFound
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


def change_password(uow: UnitOfWork, actor: Actor, current_password: str, new_password: str,
                    now: datetime | None = None, *, keep_token: str | None = None) -> int:
    """Replace the password (needs the current one); other sessions end. Returns how many ended."""
    now = now or utcnow()
    user = uow.session.get(User, actor.user_id, with_for_update=True)
    if user is None:
        raise NotFound("user not found")
    if not verify_password(user.password_hash, current_password or ""):
        raise AuthError("wrong current password: the password was not changed")
    if new_password == current_password:
        raise InvalidInput("the new password must differ from the current one")
    new_hash = hash_password(new_password)  # checks the minimum length
    uow.session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash, updated_at=now))
    ended = revoke_all_for_user(uow, user.id, now, except_token=keep_token, commit=False)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                       action=audit.PASSWORD_CHANGED, target=user.email, details={"sessions_ended": ended},
                       now=now)
    uow.commit()
    return ended
