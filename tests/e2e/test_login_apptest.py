"""Streamlit AppTest: login, enrollment, lockout, replay, expiry keeping drafts, logout everywhere, and
sign-in answers that do not tell which addresses have accounts (issue 18).

The entry script below builds navigation from app/main.py's page table (the account and admin pages a
role is offered), with a stand-in inbox page whose reply box lives in ``st.session_state["draft_1"]``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from switchboard.auth.login import REFUSED
from switchboard.auth.login_sessions import revoke_all_for_user
from switchboard.auth.totp import code_at
from switchboard.auth.users import create_user
from switchboard.errors import NotFound
from switchboard.services.organizations import create_organization, organization_id_by_name
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork
from tests.helpers import wait_for_login_cookie

PASSWORD = "correct horse battery"


def _entry() -> None:
    import streamlit as st

    from app import main, signin

    actor = signin.current_actor()
    if actor is None:
        pg = st.navigation(signin.login_pages())
    else:
        def inbox() -> None:
            st.title("Inbox")
            st.text_area("Reply", key="draft_1")

        pages = {"Inbox": [st.Page(inbox, title="Inbox", url_path="inbox", default=True)]}
        for spec in main.offered(actor.role):
            if spec.url_path in ("account", "admin-users", "audit-log"):
                pages.setdefault(spec.section, []).append(
                    st.Page(main.view_of(spec), title=spec.title, url_path=spec.url_path))  # type: ignore[arg-type]
        pg = st.navigation(pages)
        goto = st.session_state.pop("test_goto", None)  # test-only: AppTest cannot click st.page_link
        if goto:
            st.switch_page(next(p for group in pages.values() for p in group if p.url_path == goto))
    pg.run()


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    secret: str


def _user(engine: Engine, email: str = "ana@example.com", role: str = "agent") -> Account:
    with UnitOfWork(engine) as u:  # one organization for every user of the test
        try:
            org = organization_id_by_name(u, "Acme")
        except NotFound:
            org = create_organization(u, "Acme")
        u.commit()
    with UnitOfWork(engine) as u:
        created = create_user(u, org, email=email, name="Ana", role=role,
                              secret_key=get_settings().secret_key_bytes(), password=PASSWORD)
        u.commit()
    return Account(created.user_id, created.email, created.totp_secret)


def _app() -> AppTest:
    at = AppTest.from_function(_entry, default_timeout=30)
    return at.run()


def _fill_login(at: AppTest, email: str, password: str, code: str) -> AppTest:
    at.text_input(key="login_email").input(email)
    at.text_input(key="login_password").input(password)
    at.text_input(key="login_code").input(code)
    return at.button(key="login_submit").click().run()


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.error] + [e.value for e in at.warning] + [e.value for e in at.title]
    return " | ".join(str(p) for p in parts)


def _fresh_code(secret: str) -> str:
    """A code whose step was not used yet: wait for the next step if this one is taken."""
    return code_at(secret, datetime.now(UTC))


def _enroll(at: AppTest) -> tuple[AppTest, str]:
    assert "Set up two-factor authentication" in _texts(at), _texts(at)
    assert len(at.get("image")) == 1  # the QR code
    secret = at.code[0].value.replace(" ", "")
    at.text_input(key="enroll_code").input(code_at(secret, datetime.now(UTC)))
    at = at.button(key="enroll_submit").click().run()
    return at, secret


def test_enrollment_then_login(app_env: None, engine: Engine) -> None:
    user = _user(engine)
    at = _fill_login(_app(), user.email, PASSWORD, "")
    at, secret = _enroll(at)
    assert secret == user.secret
    assert "Save your recovery codes" in _texts(at)
    codes = at.code[0].value.split("\n")
    assert len(codes) == 10
    assert at.button(key="enroll_continue").disabled
    at.checkbox(key="enroll_codes_saved").check().run()
    at = at.button(key="enroll_continue").click().run()
    assert at.title[0].value == "Inbox"


def test_enrollment_refuses_a_wrong_code(app_env: None, engine: Engine) -> None:
    user = _user(engine)
    at = _fill_login(_app(), user.email, PASSWORD, "")
    wrong = "123456" if _fresh_code(user.secret) != "123456" else "654321"
    at.text_input(key="enroll_code").input(wrong)
    at = at.button(key="enroll_submit").click().run()
    assert "wrong TOTP code" in _texts(at)
    assert "Set up two-factor authentication" in _texts(at)


def _enrolled_user(engine: Engine, role: str = "agent") -> Account:
    from switchboard.auth.enrollment import confirm_enrollment
    from switchboard.auth.login import PendingLogin, verify_password_step

    user = _user(engine, role=role)
    earlier = datetime.fromtimestamp(time.time() - 120, UTC)  # leaves the current steps unused
    with UnitOfWork(engine) as u:
        pending = verify_password_step(u, user.email, PASSWORD, earlier)
    assert isinstance(pending, PendingLogin)
    with UnitOfWork(engine) as u:
        confirm_enrollment(u, pending, code_at(user.secret, earlier), earlier)
        u.commit()
    return user


def test_login_with_code_and_wrong_password(app_env: None, engine: Engine) -> None:
    user = _enrolled_user(engine)
    at = _fill_login(_app(), user.email, "wrong password!", _fresh_code(user.secret))
    assert REFUSED in _texts(at)
    at = _fill_login(at, "nobody@example.com", PASSWORD, _fresh_code(user.secret))
    assert REFUSED in _texts(at)
    at = _fill_login(at, user.email, PASSWORD, _fresh_code(user.secret))
    assert at.title[0].value == "Inbox"


def test_lockout_after_five_failures(app_env: None, engine: Engine) -> None:
    user = _enrolled_user(engine)
    at = _app()
    for _ in range(5):
        at = _fill_login(at, user.email, "wrong password!", "000000")
    assert "too many failed attempts: sign-in with this address is locked; try again in 15 minutes" in _texts(at)
    at = _fill_login(at, user.email, PASSWORD, _fresh_code(user.secret))
    assert "sign-in with this address is locked" in _texts(at)
    assert not at.title or at.title[0].value != "Inbox"


def test_replayed_code_is_refused(app_env: None, engine: Engine) -> None:
    user = _enrolled_user(engine)
    code = _fresh_code(user.secret)
    at = _fill_login(_app(), user.email, PASSWORD, code)
    assert at.title[0].value == "Inbox"
    at.session_state["test_goto"] = "account"
    at.run()
    at = at.button(key="account_logout").click().run()
    assert "You are signed out." in _texts(at)
    at = _fill_login(at, user.email, PASSWORD, code)
    assert REFUSED in _texts(at) and "Inbox" not in _texts(at)


def test_revoked_session_shows_login_and_keeps_the_draft(app_env: None, engine: Engine) -> None:
    from app import signin

    user = _enrolled_user(engine)
    at = _fill_login(_app(), user.email, PASSWORD, _fresh_code(user.secret))
    at.text_area(key="draft_1").input("half-written reply").run()
    with UnitOfWork(engine) as u:  # logout on another tab / admin disable
        revoke_all_for_user(u, user.id)
        u.commit()
    at.session_state[signin.CHECKED_AT] = 0.0  # skip the few-seconds re-check throttle
    at.run()
    assert "Sign in to Switchboard" in _texts(at)
    assert "signed out" in _texts(at)
    assert at.session_state["draft_1"] == "half-written reply"
    at = _fill_login(at, user.email, PASSWORD, code_at(user.secret, datetime.fromtimestamp(time.time() + 30, UTC)))
    assert at.title[0].value == "Inbox"
    assert at.text_area(key="draft_1").value == "half-written reply"


def test_admin_sees_admin_pages_and_invites(app_env: None, engine: Engine) -> None:
    user = _enrolled_user(engine, role="admin")
    at = _fill_login(_app(), user.email, PASSWORD, _fresh_code(user.secret))
    at.session_state["test_goto"] = "admin-users"
    at.run()
    assert at.title[0].value == "Users & access"
    at.text_input(key="admin_invite_email").input("new@example.com")
    at.text_input(key="admin_invite_name").input("Nia")
    at = at.button(key="admin_invite_submit").click().run()
    link = at.code[0].value
    assert "/invite?token=" in link
    at.session_state["test_goto"] = "audit-log"
    at.run()
    assert at.title[0].value == "Audit log"
    actions = str(at.dataframe[0].value["action"].tolist())
    assert "user.invited" in actions and "auth.login" in actions


# --- issue 18: the answers do not tell which addresses have accounts -------------------------------------
def _output(at: AppTest) -> list[tuple[str, str]]:
    """Everything the page shows, in order: each element's type and text (a widget: its label, not what
    was typed into it)."""
    out: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)
            return
        text = getattr(node, "label", None)
        if text is None:
            text = getattr(node, "value", None)
        out.append((str(node.type), str(text)))

    walk(at.main)
    walk(at.sidebar)
    return out


def _recovery_entry() -> None:
    import streamlit as st

    from app import signin

    st.navigation([signin.recovery_page(), signin.login_page(default=False)]).run()


def _fill_recovery(at: AppTest, email: str, password: str, code: str) -> AppTest:
    at.text_input(key="recovery_email").input(email)
    at.text_input(key="recovery_password").input(password)
    at.text_input(key="recovery_code").input(code)
    return at.button(key="recovery_submit").click().run()


@pytest.mark.parametrize("case", ["wrong password", "disabled", "wrong code"])
def test_sign_in_answers_the_same_for_an_unknown_address(app_env: None, engine: Engine, case: str) -> None:
    from sqlalchemy import update

    from switchboard.db.schema import User

    user = _enrolled_user(engine)
    password = PASSWORD if case != "wrong password" else "wrong password!"
    if case == "disabled":
        with engine.begin() as con:
            con.execute(update(User).where(User.id == user.id).values(status="disabled"))
    known, unknown = _app(), _app()
    for attempt in range(6):
        code = _fresh_code(user.secret)
        code = ("000000" if code != "000000" else "111111") if case == "wrong code" else code
        known = _fill_login(known, user.email, password, code)
        unknown = _fill_login(unknown, "nobody@example.com", password, code)
        assert not known.exception and not unknown.exception
        assert _output(known) == _output(unknown), f"attempt {attempt + 1}"
        assert any(kind == "error" and (REFUSED in text or "try again in" in text) for kind, text in _output(known))
    assert "try again in 15 minutes" in _texts(known)


def test_recovery_page_answers_the_same_for_an_unknown_address(app_env: None, engine: Engine) -> None:
    user = _enrolled_user(engine)
    known = AppTest.from_function(_recovery_entry, default_timeout=30).run()
    unknown = AppTest.from_function(_recovery_entry, default_timeout=30).run()
    for attempt in range(6):
        password = PASSWORD if attempt % 2 else "wrong password!"  # a wrong code, then a wrong password
        known = _fill_recovery(known, user.email, password, "ABCDE-FGHJK")
        unknown = _fill_recovery(unknown, "nobody@example.com", password, "ABCDE-FGHJK")
        assert _output(known) == _output(unknown), f"attempt {attempt + 1}"
        assert any(kind == "error" and (REFUSED in text or "try again in" in text) for kind, text in _output(known))
        assert known.title[0].value == "Sign in with a recovery code"
    assert "try again in 15 minutes" in _texts(known)


# --- a real browser: refresh keeps the login, logout in one tab ends it in the other -------------------
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served_app(db_url: str, tmp_path: object) -> Iterator[str]:
    import inspect
    import subprocess
    import sys
    import textwrap
    import urllib.request
    from pathlib import Path

    script = Path(str(tmp_path)) / "entry.py"
    body = textwrap.dedent("".join(inspect.getsourcelines(_entry)[0][1:]))
    script.write_text("from __future__ import annotations\n" + body)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless=true",
         f"--server.port={port}", "--server.address=127.0.0.1", "--server.fileWatcherType=none"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium (apt-get install chromium)")
def test_browser_refresh_keeps_login_and_logout_ends_every_tab(served_app: str, engine: Engine) -> None:
    from playwright.sync_api import expect, sync_playwright

    user = _enrolled_user(engine)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(served_app)
        tab.get_by_role("textbox", name="Email").fill(user.email)
        tab.get_by_label("Password", exact=True).fill(PASSWORD)
        tab.get_by_role("textbox", name="6-digit code from your authenticator app").fill(_fresh_code(user.secret))
        tab.get_by_role("button", name="Sign in").click()
        expect(tab.get_by_role("heading", name="Inbox")).to_be_visible(timeout=15_000)
        tab.get_by_label("Reply").fill("draft in progress")
        wait_for_login_cookie(tab)

        tab.reload()  # a new Streamlit session: restored from the signed cookie
        expect(tab.get_by_role("heading", name="Inbox")).to_be_visible(timeout=15_000)

        other = context.new_page()  # a second tab of the same browser
        other.goto(served_app + "/account")
        expect(other.get_by_role("heading", name="My account")).to_be_visible(timeout=15_000)
        other.get_by_role("button", name="Sign out", exact=True).click()
        expect(other.get_by_role("heading", name="Sign in to Switchboard")).to_be_visible(timeout=15_000)

        tab.wait_for_timeout(3500)  # past the re-check throttle
        tab.get_by_label("Reply").fill("typing triggers a rerun")
        tab.get_by_label("Reply").press("Control+Enter")
        expect(tab.get_by_role("heading", name="Sign in to Switchboard")).to_be_visible(timeout=15_000)
        expect(tab.get_by_text("signed out", exact=False).first).to_be_visible()
        browser.close()


def test_database_down_is_one_clear_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    from app import deps

    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:1/switchboard")
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path))
    get_settings.cache_clear()
    deps.engine.clear()
    try:
        entry = Path(__file__).resolve().parents[2] / "app" / "main.py"
        at = AppTest.from_file(str(entry), default_timeout=30).run()
        at = _fill_login(at, "ana@example.com", PASSWORD, "123456")
        assert not at.exception
        assert "cannot reach PostgreSQL" in _texts(at) and "Traceback" not in _texts(at)
        assert at.button(key="retry_database") is not None
    finally:
        deps.engine.clear()
        get_settings.cache_clear()
