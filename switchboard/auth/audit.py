"""The audit log: who did what to which account or permission, and when (admins read it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select

from switchboard.clock import utcnow
from switchboard.db.schema import AuditLog, User
from switchboard.errors import InvalidField
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

# What the audit log can be narrowed to, each by the prefixes of its actions. Every action written
# anywhere belongs to one (tests/unit/core/test_audit_categories.py reads the code for them).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "sign-ins and failures": ("auth.",),
    "user changes": ("user.",),
    "permissions": ("permission.",),
    "channels": ("channel.",),
    "API keys and event webhooks": ("api_key.", "event_webhook."),
    "sends (Outbox)": ("outbox.", "message."),
    "saved replies": ("saved_reply.",),
    "organization settings": ("organization.",),
    "data (imports, erasures)": ("import-events", "contact."),
}


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
    action_prefix: str | Sequence[str] | None = None,
    category: str | None = None,
    by_user_id: int | None = None,
    before_id: int | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    """The newest audit rows of the actor's organization (admins only), newest first. Narrowed, when
    given, to the actions starting with ``action_prefix`` (one or several) or of ``category`` (a key
    of :data:`CATEGORIES`; with both, either matches), to those done by ``by_user_id``, to those
    older than ``before_id`` (the next page) and to those that occurred before ``until`` (an aware
    datetime: "what happened up to that day")."""
    actor = require(uow, actor, Action.VIEW_AUDIT_LOG)
    if until is not None and until.tzinfo is None:
        raise InvalidField("until", "give a time with its time zone")
    limit = max(1, min(int(limit), 1000))
    prefixes = (action_prefix,) if isinstance(action_prefix, str) else tuple(action_prefix or ())
    if category is not None:
        if category not in CATEGORIES:
            raise InvalidField("category", f"unknown audit category {category!r}; one of: {', '.join(CATEGORIES)}")
        prefixes += CATEGORIES[category]
    stmt = (
        select(AuditLog, User.email)
        .outerjoin(User, User.id == AuditLog.actor_user_id)
        .where(AuditLog.organization_id == actor.organization_id)
        .order_by(AuditLog.id.desc())
        .limit(limit)
    )
    if prefixes:
        stmt = stmt.where(or_(*(AuditLog.action.startswith(p, autoescape=True) for p in prefixes)))
    if by_user_id is not None:
        stmt = stmt.where(AuditLog.actor_user_id == by_user_id)
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    if until is not None:  # far back, PostgreSQL reads the older entries by ix_audit_log_org_time instead
        stmt = stmt.where(AuditLog.occurred_at < until)  # of walking every newer one (migration 0019)
    return [
        AuditEntry(row.id, row.occurred_at, row.actor_user_id, email, row.action, row.target, dict(row.details))
        for row, email in uow.session.execute(stmt).all()
    ]
