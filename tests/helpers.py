"""Small helpers shared by the tests."""

from __future__ import annotations

import socket
import time
from datetime import datetime

from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from switchboard.auth.login_sessions import create_session
from switchboard.uow import UnitOfWork


def login_apptest(at: AppTest, engine: Engine, user_id: int) -> AppTest:
    """Sign ``user_id`` in on an AppTest the way app/signin.py does after a real login."""
    with UnitOfWork(engine) as uow:
        token = create_session(uow, user_id)
        uow.commit()
    at.session_state["sb_auth_token"] = token.token
    at.session_state["sb_auth_actor"] = token.actor
    at.session_state["sb_auth_name"] = token.name
    at.session_state["sb_auth_checked_at"] = time.monotonic()
    at.session_state["sb_auth_restore_tried"] = True
    return at


def lease(uow: UnitOfWork, message_id: int, now: datetime | None = None) -> int:
    """Claim due outbound messages one at a time, as a sender does, until ``message_id`` is leased, and
    return its fencing token (needed to record its outcome); the others claimed on the way are given
    back unsent, due at once."""
    from switchboard.clock import utcnow
    from switchboard.services.outbox import claim_due, release_claims

    now = now or utcnow()
    others = []
    try:
        while True:
            jobs = claim_due(uow, limit=1, now=now)
            assert jobs, f"message {message_id} is not due at {now}"
            if jobs[0].message_id == message_id:
                return jobs[0].token
            others.append(jobs[0])
    finally:
        release_claims(uow, [(j.message_id, j.token, now) for j in others])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server a test starts as a subprocess)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def page_text(at: AppTest) -> str:
    """Everything an AppTest run showed as text: st.text, captions and the alert boxes, one per line."""
    parts = [t.value for t in at.text] + [c.value for c in at.caption] + [str(e.value) for e in at.error]
    parts += [i.value for i in at.info] + [w.value for w in at.warning] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


def assert_rows_agree_with_their_conversation(engine: Engine) -> None:
    """Every message and conversation event names the organization (and a message the channel) of its
    conversation. No foreign key checks those copies since migration 0013 (they only repeat the
    conversation): every writer copies them from it, and the tests that run many writers call this."""
    from sqlalchemy import text

    with engine.connect() as con:
        messages = con.execute(text(
            "select count(*) from messages m join conversations c on c.id = m.conversation_id"
            " where m.organization_id <> c.organization_id or m.channel_id <> c.channel_id")).scalar_one()
        events = con.execute(text(
            "select count(*) from conversation_events e join conversations c on c.id = e.conversation_id"
            " where e.organization_id <> c.organization_id")).scalar_one()
    assert (messages, events) == (0, 0), f"{messages} messages and {events} events disagree with their conversation"
