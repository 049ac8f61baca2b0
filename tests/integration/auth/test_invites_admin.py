"""Invites (one-time, 72 h, SMTP via a real aiosmtpd server), admin actions, permissions, audit view."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes
from typing import Any

import pytest
from sqlalchemy import Engine, select

from switchboard.auth.admin import (
    change_role,
    disable_user,
    enable_user,
    list_users,
    reset_totp,
    set_channel_permissions,
    unlock_user,
    user_channel_grants,
)
from switchboard.auth.audit import list_audit
from switchboard.auth.enrollment import begin_enrollment, confirm_enrollment
from switchboard.auth.invites import accept_invite, describe_invite, invite_user
from switchboard.auth.login import PendingLogin, login, verify_password_step
from switchboard.auth.login_sessions import validate_session
from switchboard.auth.totp import code_at
from switchboard.db.schema import AuditLog, ChannelPermission, RecoveryCode, SigninAttempt, User
from switchboard.errors import AuthError, Conflict, InvalidInput, NotFound, PermissionDenied
from switchboard.policy import can_send_channel, can_view_channel, visible_channel_ids
from switchboard.services.channels import create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import Settings
from switchboard.types import Actor

from .conftest import KEY, PASSWORD, T0, Entrypoint, U, refused


def _token(link: str) -> str:
    return link.split("token=", 1)[1]


def test_invite_link_is_one_time_and_leads_to_enrollment(engine: Engine, make_user: Callable[..., U],
                                                         settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    with Entrypoint(engine) as u:
        result = invite_user(u, admin.actor, email="New@Example.com", name="Nia", role="agent", now=T0,
                             base_url="http://app.test", secret_key=KEY, settings=settings)
    assert not result.emailed and result.link.startswith("http://app.test/invite?token=")
    assert result.expires_at == T0 + timedelta(hours=72)
    token = _token(result.link)
    with Entrypoint(engine) as u:
        assert describe_invite(u, token, T0).email == "new@example.com"
    with pytest.raises(InvalidInput, match="at least 10"), Entrypoint(engine) as u:
        accept_invite(u, token, "short", T0)
    with Entrypoint(engine) as u:
        pending = accept_invite(u, token, "a long new password", T0 + timedelta(hours=1))
    assert pending.needs_enrollment
    with pytest.raises(AuthError, match="already used"), Entrypoint(engine) as u:
        accept_invite(u, token, "another long password", T0 + timedelta(hours=2))
    with Entrypoint(engine) as u:
        enrollment = begin_enrollment(u, pending, T0 + timedelta(hours=1), secret_key=KEY)
    secret = enrollment.manual_key.replace(" ", "")
    with Entrypoint(engine) as u:
        confirm_enrollment(u, pending, code_at(secret, T0 + timedelta(hours=1)), T0 + timedelta(hours=1),
                           secret_key=KEY, settings=settings)
    later = T0 + timedelta(hours=2)
    with Entrypoint(engine) as u:
        login(u, "new@example.com", "a long new password", code_at(secret, later), later, secret_key=KEY,
              settings=settings)


def test_invite_expires_after_72_hours_and_reinvite_replaces_it(engine: Engine, make_user: Callable[..., U],
                                                                 settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    with Entrypoint(engine) as u:
        first = invite_user(u, admin.actor, email="x@example.com", name="X", role="agent", now=T0,
                            secret_key=KEY, settings=settings)
    with pytest.raises(AuthError, match="expired"), Entrypoint(engine) as u:
        accept_invite(u, _token(first.link), "a long new password", T0 + timedelta(hours=72, seconds=1))
    with Entrypoint(engine) as u:
        second = invite_user(u, admin.actor, email="x@example.com", name="X", role="agent", now=T0,
                             secret_key=KEY, settings=settings)
    assert second.user_id == first.user_id
    with pytest.raises(AuthError, match="already used"), Entrypoint(engine) as u:
        accept_invite(u, _token(first.link), "a long new password", T0)
    with Entrypoint(engine) as u:
        accept_invite(u, _token(second.link), "a long new password", T0)
    with pytest.raises(InvalidInput, match="already exists"), Entrypoint(engine) as u:
        invite_user(u, admin.actor, email="x@example.com", name="X", role="agent", now=T0, secret_key=KEY,
                    settings=settings)
    with pytest.raises(AuthError, match="invalid invite link"), Entrypoint(engine) as u:
        describe_invite(u, "nope", T0)


def test_only_admins_invite(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    manager = make_user("m@example.com", role="manager")
    with pytest.raises(PermissionDenied, match="only admins"), Entrypoint(engine) as u:
        invite_user(u, manager.actor, email="y@example.com", name="Y", role="agent", now=T0, secret_key=KEY,
                    settings=settings)


def test_invite_is_emailed_over_smtp(engine: Engine, make_user: Callable[..., U], settings: Settings,
                                     smtp_server: tuple[int, list[Any]]) -> None:
    port, received = smtp_server
    admin = make_user("boss@example.com", role="admin")
    smtp = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port,
                                       "smtp_from": "inbox@acme.test"})
    with Entrypoint(engine) as u:
        result = invite_user(u, admin.actor, email="z@example.com", name="Zoe", role="agent", now=T0,
                             base_url="http://app.test", secret_key=KEY, settings=smtp)
    assert result.emailed and result.mail_error is None
    assert len(received) == 1 and received[0].rcpt_tos == ["z@example.com"]
    payload = message_from_bytes(received[0].content).get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert result.link in body and "72 hours" in body


def test_invite_with_unreachable_smtp_still_gives_the_link(engine: Engine, make_user: Callable[..., U],
                                                           settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    smtp = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    with Entrypoint(engine) as u:
        result = invite_user(u, admin.actor, email="w@example.com", name="W", role="agent", now=T0,
                             secret_key=KEY, settings=smtp)
    assert not result.emailed and result.mail_error and "could not send mail" in result.mail_error
    assert "token=" in result.link


def _login_token(engine: Engine, user: U, settings: Settings, when: Any = T0) -> str:
    with Entrypoint(engine) as u:
        return login(u, user.email, PASSWORD, code_at(user.secret, when), when, secret_key=KEY,
                     settings=settings).token  # type: ignore[union-attr]


def test_disable_revokes_sessions_at_once(engine: Engine, make_user: Callable[..., U],
                                          settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    agent = make_user()
    token = _login_token(engine, agent, settings)
    with Entrypoint(engine) as u:
        disable_user(u, admin.actor, agent.id, T0 + timedelta(seconds=5))
    with pytest.raises(AuthError, match="account disabled"), Entrypoint(engine) as u:
        validate_session(u, token, T0 + timedelta(seconds=6), settings=settings)
    with Entrypoint(engine) as u:
        disable_user(u, admin.actor, agent.id, T0 + timedelta(seconds=7))  # idempotent
    with Entrypoint(engine) as u:
        assert enable_user(u, admin.actor, agent.id, T0).status == "active"
    with Entrypoint(engine) as u:
        assert [x.status for x in list_users(u, admin.actor)] == ["active", "active"]
    with pytest.raises(AuthError, match="signed out"), Entrypoint(engine) as u:
        validate_session(u, token, T0 + timedelta(seconds=8), settings=settings)  # stays revoked
    with pytest.raises(PermissionDenied, match="your own account"), Entrypoint(engine) as u:
        disable_user(u, admin.actor, admin.id, T0)


def test_last_admin_is_protected_and_roles_change(engine: Engine, make_user: Callable[..., U],
                                                  settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    agent = make_user()
    with pytest.raises(Conflict, match="last active admin"), Entrypoint(engine) as u:
        change_role(u, admin.actor, admin.id, "agent", T0)
    with Entrypoint(engine) as u:
        assert change_role(u, admin.actor, agent.id, "manager", T0).id == agent.id
    token = _login_token(engine, agent, settings)
    with Entrypoint(engine) as u:
        assert validate_session(u, token, T0, settings=settings).role == "manager"
    with pytest.raises(PermissionDenied, match="only admins"), Entrypoint(engine) as u:
        change_role(u, agent.actor, admin.id, "agent", T0)
    with pytest.raises(InvalidInput, match="role must be"), Entrypoint(engine) as u:
        change_role(u, admin.actor, agent.id, "root", T0)


def test_reset_totp_forces_new_enrollment(engine: Engine, make_user: Callable[..., U],
                                          settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    agent = make_user()
    token = _login_token(engine, agent, settings)
    with Entrypoint(engine) as u:
        reset_totp(u, admin.actor, agent.id, T0, secret_key=KEY)
    with pytest.raises(AuthError, match="signed out"), Entrypoint(engine) as u:
        validate_session(u, token, T0, settings=settings)
    with engine.connect() as con:
        assert con.execute(select(RecoveryCode.id).where(RecoveryCode.user_id == agent.id)).first() is None
    later = T0 + timedelta(minutes=1)
    with Entrypoint(engine) as u:
        pending = login(u, agent.email, PASSWORD, code_at(agent.secret, later), later, secret_key=KEY,
                        settings=settings)
    assert pending.needs_enrollment  # type: ignore[union-attr]
    with Entrypoint(engine) as u:
        new_secret = begin_enrollment(u, pending, later, secret_key=KEY).manual_key.replace(" ", "")  # type: ignore[arg-type]
    assert new_secret != agent.secret


def test_unlock_clears_the_lockout_and_the_counter_of_the_address(engine: Engine, make_user: Callable[..., U],
                                                                   settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    agent = make_user()
    for _ in range(6):
        with Entrypoint(engine) as u:
            last = refused(verify_password_step(u, agent.email, "bad password!", T0, settings=settings))
    assert "locked" in last
    with Entrypoint(engine) as u:
        view = next(v for v in list_users(u, admin.actor) if v.id == agent.id)
    assert view.locked_until == T0 + timedelta(minutes=15) and view.failed_attempts == 0
    with pytest.raises(PermissionDenied), Entrypoint(engine) as u:
        unlock_user(u, agent.actor, agent.id, T0)
    with Entrypoint(engine) as u:
        assert unlock_user(u, admin.actor, agent.id, T0).locked_until is None
    with engine.connect() as con:
        assert con.execute(select(SigninAttempt).where(SigninAttempt.email == agent.email)).first() is None
    with Entrypoint(engine) as u:
        assert isinstance(verify_password_step(u, agent.email, PASSWORD, T0, settings=settings), PendingLogin)
    with Entrypoint(engine) as u:  # one failure after the unlock: a fresh count
        assert "(4 attempts left" in refused(verify_password_step(u, agent.email, "bad", T0, settings=settings))
    with Entrypoint(engine) as u:
        entries = list_audit(u, admin.actor, action_prefix="user.unlocked")
    assert [(e.target, e.actor_email) for e in entries] == [(agent.email, admin.email)]


def _two_channels(engine: Engine, org: int) -> tuple[int, int]:
    with Entrypoint(engine) as u:
        wa = create_channel(u, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=KEY).id
        tg = create_channel(u, Actor.system(org), key="tg", provider="telegram", name="TG", secret_key=KEY).id
    return wa, tg


def test_one_save_of_channel_permissions_is_one_transaction(engine: Engine, make_user: Callable[..., U],
                                                            settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    agent = make_user()
    wa, tg = _two_channels(engine, admin.org)
    unknown = max(wa, tg) + 1000
    with pytest.raises(NotFound, match=f"channel {unknown}"), Entrypoint(engine) as u:
        set_channel_permissions(u, admin.actor, agent.id, {wa: (True, True), tg: (True, False),
                                                           unknown: (True, True)}, T0)
    with engine.connect() as con:  # the first two changes were made, then refused: none is kept
        assert con.execute(select(ChannelPermission).where(ChannelPermission.user_id == agent.id)).first() is None
        assert con.execute(select(AuditLog).where(AuditLog.action == "permission.changed")).first() is None
    with Entrypoint(engine) as u:
        assert set_channel_permissions(u, admin.actor, agent.id, {wa: (True, True), tg: (True, False)}, T0) == 2


def test_channel_permissions_and_org_isolation(engine: Engine, make_user: Callable[..., U],
                                               settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    agent = make_user()
    wa, tg = _two_channels(engine, admin.org)
    with Entrypoint(engine) as u:
        other_org = create_organization(u, "Other")
        u.commit()
    other = make_user("eve@other.com", role="admin", organization_id=other_org)
    with Entrypoint(engine) as u:
        assert visible_channel_ids(u, agent.actor) == set()
        assert visible_channel_ids(u, admin.actor) is None  # every channel
    with Entrypoint(engine) as u:
        assert set_channel_permissions(u, admin.actor, agent.id, {wa: (True, True), tg: (True, False)}, T0) == 2
    with Entrypoint(engine) as u:
        assert set_channel_permissions(u, admin.actor, agent.id, {wa: (True, True), tg: (True, False)}, T0) == 0
        assert can_send_channel(u, agent.actor, wa) and can_view_channel(u, agent.actor, tg)
        assert not can_send_channel(u, agent.actor, tg)
        assert not can_view_channel(u, other.actor, wa)
        assert [(a.channel_id, a.can_view, a.can_send) for a in user_channel_grants(u, admin.actor, agent.id)] == \
            [(tg, True, False), (wa, True, True)]
    with pytest.raises(PermissionDenied), Entrypoint(engine) as u:
        set_channel_permissions(u, agent.actor, agent.id, {tg: (True, True)}, T0)
    with pytest.raises(Exception, match="not found"), Entrypoint(engine) as u:
        disable_user(u, other.actor, agent.id, T0)
    with Entrypoint(engine) as u:
        entries = list_audit(u, admin.actor, action_prefix="permission.")
    assert [(e.action, e.target, e.actor_email, e.details["channel"]) for e in entries] == [
        ("permission.changed", agent.email, admin.email, "tg"),
        ("permission.changed", agent.email, admin.email, "wa"),
    ]
    with Entrypoint(engine) as u:
        assert all(e.action != "permission.changed" for e in list_audit(u, other.actor))
    with pytest.raises(PermissionDenied), Entrypoint(engine) as u:
        list_audit(u, agent.actor)


def test_audit_covers_logins_failures_lockouts_and_user_changes(engine: Engine, make_user: Callable[..., U],
                                                                settings: Settings) -> None:
    admin = make_user("boss@example.com", role="admin")
    agent = make_user()
    for _ in range(5):
        with Entrypoint(engine) as u:
            refused(verify_password_step(u, agent.email, "bad password!", T0, settings=settings))
    with Entrypoint(engine) as u:
        disable_user(u, admin.actor, agent.id, T0)
    with Entrypoint(engine) as u:
        actions = {e.action for e in list_audit(u, admin.actor, limit=500)}
    assert {"user.created", "auth.login", "auth.totp_enrolled", "auth.login_failed", "auth.lockout",
            "user.disabled"} <= actions
    with engine.connect() as con:
        assert con.execute(select(User.status).where(User.id == agent.id)).scalar() == "disabled"


def test_audit_log_narrowed_to_a_category_or_a_person(engine: Engine, make_user: Callable[..., U]) -> None:
    from switchboard.auth.audit import CATEGORIES, record_audit

    admin = make_user("boss@example.com", role="admin")
    agent = make_user()
    other = make_user("eve@other.com", role="admin",
                      organization_id=_new_org(engine, "Other"))
    with Entrypoint(engine) as u:  # a few of each kind, by two people, and one of another organization
        for i, action in enumerate(["api_key.created", "event_webhook.created", "channel.paused",
                                    "saved_reply.created", "savedXreply.lookalike", "import-events",
                                    "contact.erased", "outbox.cancelled", "message.unknown_resent"]):
            record_audit(u, organization_id=admin.org, actor_user_id=(admin.id, agent.id)[i % 2], action=action,
                         target=f"t{i}", now=T0 + timedelta(minutes=i))
        record_audit(u, organization_id=other.org, actor_user_id=other.id, action="api_key.created", now=T0)

    def listed(**kw: Any) -> list[str]:
        with Entrypoint(engine) as u:
            return [e.action for e in list_audit(u, admin.actor, **kw)]

    assert listed(category="API keys and event webhooks") == ["event_webhook.created", "api_key.created"]
    assert listed(category="saved replies") == ["saved_reply.created"]  # "_" is a letter, not a wildcard
    assert listed(category="data (imports, erasures)") == ["contact.erased", "import-events"]
    assert listed(category="sends (Outbox)") == ["message.unknown_resent", "outbox.cancelled"]
    assert listed(category="channels", by_user_id=admin.id) == ["channel.paused"]
    assert listed(category="channels", by_user_id=agent.id) == []
    by_agent = listed(by_user_id=agent.id)
    assert by_agent[:4] == ["outbox.cancelled", "import-events", "saved_reply.created", "event_webhook.created"]
    assert listed(by_user_id=other.id) == []  # another organization's person: nothing of theirs shows
    assert listed(action_prefix=("api_key.", "channel.")) == ["channel.paused", "api_key.created"]
    assert set(CATEGORIES) >= {"sign-ins and failures", "user changes", "permissions", "channels"}
    with pytest.raises(InvalidInput, match="unknown audit category 'nope'; one of: sign-ins"), \
            Entrypoint(engine) as u:
        list_audit(u, admin.actor, category="nope")


def test_audit_log_up_to_a_time(engine: Engine, make_user: Callable[..., U]) -> None:
    """``until`` keeps what occurred before it, newest first, pages below it, and with no entry after
    it, everything; a time without its zone is refused."""
    from datetime import datetime

    from switchboard.auth.audit import record_audit

    admin = make_user("boss@example.com", role="admin")
    other = _new_org(engine, "Other")
    with Entrypoint(engine) as u:  # one entry a day for five days, and one of another organization
        for day in range(5):
            record_audit(u, organization_id=admin.org, actor_user_id=admin.id, action="channel.paused",
                         target=f"day {day}", now=T0 + timedelta(days=day, hours=12))
        record_audit(u, organization_id=other, actor_user_id=None, action="channel.paused", target="other",
                     now=T0 + timedelta(days=1))

    def targets(**kw: Any) -> list[str | None]:
        with Entrypoint(engine) as u:
            return [e.target for e in list_audit(u, admin.actor, category="channels", **kw)]

    assert targets(until=T0 + timedelta(days=3)) == ["day 2", "day 1", "day 0"]
    assert targets(until=T0 + timedelta(days=3), limit=2) == ["day 2", "day 1"]
    with Entrypoint(engine) as u:  # the next page of that
        [_, second] = list_audit(u, admin.actor, category="channels", until=T0 + timedelta(days=3), limit=2)
    assert targets(until=T0 + timedelta(days=3), before_id=second.id) == ["day 0"]
    assert targets(until=T0 + timedelta(days=30)) == [f"day {d}" for d in range(4, -1, -1)]  # nothing after
    assert targets(until=T0) == []
    with pytest.raises(InvalidInput, match="time zone"), Entrypoint(engine) as u:
        list_audit(u, admin.actor, until=datetime(2026, 1, 1))  # noqa: DTZ001 - the mistake tested


def _new_org(engine: Engine, name: str) -> int:
    with Entrypoint(engine) as u:
        return create_organization(u, name)
