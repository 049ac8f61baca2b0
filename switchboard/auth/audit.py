"""The audit log: who did what to which account or permission, and when (admins read it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from switchboard.clock import utcnow
from switchboard.db.schema import AuditLog, User
from switchboard.policy import Action, require
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

# Actions written by switchboard.auth (others may add their own with the same helper).
LOGIN = "auth.login"
LOGIN_FAILED = "auth.login_failed"
LOCKOUT = "auth.lockout"
LOGOUT = "auth.logout"
RECOVERY_CODE_USED = "auth.recovery_code_used"
RECOVERY_CODES_REGENERATED = "auth.recovery_codes_regenerated"
TOTP_ENROLLED = "auth.totp_enrolled"
PASSWORD_CHANGED = "user.password_changed"
USER_CREATED = "user.created"
USER_INVITED = "user.invited"
INVITE_ACCEPTED = "user.invite_accepted"
USER_DISABLED = "user.disabled"
USER_ENABLED = "user.enabled"
USER_UNLOCKED = "user.unlocked"
ROLE_CHANGED = "user.role_changed"
TOTP_RESET = "user.totp_reset"
PERMISSION_CHANGED = "permission.changed"
SESSIONS_REVOKED = "auth.sessions_revoked"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    occurred_at: datetime
    actor_user_id: int | None
    actor_email: str | None
    action: str
    target: str | None
    details: dict[str, Any]


def record_audit(
    uow: UnitOfWork,
    *,
    organization_id: int | None,
    actor_user_id: int | None,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Append one audit row in the caller's transaction (the caller commits)."""
    uow.session.execute(
        insert(AuditLog).values(
            organization_id=organization_id,
            actor_user_id=actor_user_id,
            action=action,
            target=target,
            details=details or {},
            occurred_at=now or utcnow(),
        )
    )


def list_audit(
    uow: UnitOfWork,
    actor: Actor,
    *,
    limit: int = 200,
    action_prefix: str | None = None,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """The newest audit rows of the actor's organization (admins only), newest first."""
    actor = require(uow, actor, Action.VIEW_AUDIT_LOG)
    limit = max(1, min(int(limit), 1000))
    stmt = (
        select(AuditLog, User.email)
        .outerjoin(User, User.id == AuditLog.actor_user_id)
        .where(AuditLog.organization_id == actor.organization_id)
        .order_by(AuditLog.id.desc())
        .limit(limit)
    )
    if action_prefix:
        stmt = stmt.where(AuditLog.action.startswith(action_prefix, autoescape=True))
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    return [
        AuditEntry(row.id, row.occurred_at, row.actor_user_id, email, row.action, row.target, dict(row.details))
        for row, email in uow.session.execute(stmt).all()
    ]
