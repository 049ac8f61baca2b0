"""Small helpers shared by the tests."""

from __future__ import annotations

import time

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
