"""Invites: an admin creates an invited user and a one-time link (72 h) to set a password and enroll."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import insert, select, update

from switchboard.auth import audit
from switchboard.auth.login import PENDING_MINUTES, PendingLogin, clear_attempts
from switchboard.auth.login_sessions import token_hash
from switchboard.auth.mail import MailError, send_invite_email
from switchboard.auth.passwords import check_strength, hash_password
from switchboard.auth.users import create_user, normalize_email
from switchboard.clock import utcnow
from switchboard.db.schema import Invite, User
from switchboard.errors import AuthError, InvalidInput
from switchboard.policy import Action, require
from switchboard.settings import Settings, get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

INVITE_HOURS = 72


@dataclass(frozen=True, slots=True)
class InviteResult:
    user_id: int
    email: str
    link: str  # shown to the admin when it was not e-mailed
    expires_at: datetime
    emailed: bool
    mail_error: str | None = None


@dataclass(frozen=True, slots=True)
class InviteInfo:
    email: str
    name: str
    expires_at: datetime


def app_url(settings: Settings) -> str:
    return settings.app_base_url or f"http://127.0.0.1:{settings.app_port}"


def invite_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/invite?token={quote(token)}"


def invite_user(
    uow: UnitOfWork,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: str,
    now: datetime | None = None,
    base_url: str | None = None,
    secret_key: bytes | None = None,
    settings: Settings | None = None,
) -> InviteResult:
    """Create (or re-invite) an invited user and a one-time link; e-mail it when SMTP is configured.

    Re-inviting a still-invited email replaces its earlier links (idempotent for the person invited).
    The organization's system actor (``switchboard org create --admin-email``) invites its first admin.
    """
    actor = require(uow, actor, Action.MANAGE_USERS)
    now = now or utcnow()
    settings = settings or get_settings()
    secret_key = secret_key or settings.secret_key_bytes()
    email = normalize_email(email)
    existing = uow.session.execute(select(User).where(User.email == email).with_for_update()).scalar_one_or_none()
    if existing is not None:
        if existing.status != "invited" or existing.organization_id != actor.organization_id:
            raise InvalidInput(f"a user with email {email} already exists")
        user_id = existing.id
        name = existing.name
        uow.session.execute(update(Invite).where(Invite.user_id == user_id, Invite.used_at.is_(None))
                            .values(used_at=now))
    else:
        user_id = create_user(uow, actor.organization_id, email=email, name=name, role=role,
                              secret_key=secret_key, status="invited", actor_user_id=actor.acting_user_id).user_id
        name = uow.session.execute(select(User.name).where(User.id == user_id)).scalar_one()
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(hours=INVITE_HOURS)
    uow.session.execute(insert(Invite).values(user_id=user_id, token_hash=token_hash(token),
                                              created_by_user_id=actor.acting_user_id, expires_at=expires_at,
                                              created_at=now))
    link = invite_link(base_url or app_url(settings), token)
    emailed, mail_error = False, None
    if settings.smtp_host:
        try:
            send_invite_email(settings, to=email, name=name, link=link,
                              inviter=None if actor.is_system else actor.email or None,
                              valid_hours=INVITE_HOURS)
            emailed = True
        except MailError as exc:
            mail_error = str(exc)
    audit.record_audit(uow, organization_id=actor.organization_id, actor_user_id=actor.acting_user_id,
                       action=audit.USER_INVITED, target=email,
                       details={"role": role, "emailed": emailed, **({"mail_error": mail_error}
                                                                      if mail_error else {})}, now=now)
    return InviteResult(user_id, email, link, expires_at, emailed, mail_error)


def _invite_for_update(uow: UnitOfWork, token: str, now: datetime) -> tuple[Invite, User]:
    row = uow.session.execute(
        select(Invite, User).join(User, User.id == Invite.user_id)
        .where(Invite.token_hash == token_hash(token or "")).with_for_update()
    ).first()
    if row is None:
        raise AuthError("invalid invite link: ask an admin for a new one")
    invite, user = row
    if invite.used_at is not None:
        raise AuthError("invite link already used: sign in, or ask an admin for a new link")
    if invite.expires_at <= now:
        raise AuthError(f"invite link expired (links are valid {INVITE_HOURS} h): ask an admin for a new one")
    if user.status != "invited":
        raise AuthError(f"this account is {user.status}; the invite no longer applies")
    return invite, user


def describe_invite(uow: UnitOfWork, token: str, now: datetime | None = None) -> InviteInfo:
    """Who the invite is for (the acceptance page greets them); AuthError if unusable."""
    invite, user = _invite_for_update(uow, token, now or utcnow())
    return InviteInfo(user.email, user.name, invite.expires_at)


def accept_invite(uow: UnitOfWork, token: str, password: str, now: datetime | None = None) -> PendingLogin:
    """Set the password and activate the account; the returned PendingLogin leads to TOTP enrollment."""
    now = now or utcnow()
    check_strength(password or "")
    invite, user = _invite_for_update(uow, token, now)
    uow.session.execute(update(Invite).where(Invite.id == invite.id).values(used_at=now))
    uow.session.execute(update(User).where(User.id == user.id).values(
        password_hash=hash_password(password), status="active", updated_at=now,
        totp_enabled=False, totp_last_step=None))
    clear_attempts(uow, user.email)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                       action=audit.INVITE_ACCEPTED, target=user.email, now=now)
    return PendingLogin(user.id, user.organization_id, user.email, user.name, True,
                        now + timedelta(minutes=PENDING_MINUTES))
