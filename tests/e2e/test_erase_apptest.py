"""AppTest: an admin erases a customer from the inbox's customer profile; agents are not offered it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from switchboard.db.schema import Contact, Message
from switchboard.uow import UnitOfWork
from tests.e2e.test_thread_pages_apptest import _inbox, _text
from tests.e2e.test_thread_pages_apptest import world as world  # the fixture (a thread with Grace Hopper)
from tests.helpers import login_apptest


def _thread_as(engine: Engine, world: dict[str, Any], email: str) -> AppTest:
    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, world["users"][email])
    at.session_state["selected_conversation"] = world["conversation_id"]
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.usefixtures("app_env")
def test_admin_erases_a_customer_from_the_profile(engine: Engine, world: dict[str, Any]) -> None:
    with UnitOfWork(engine) as uow:
        contact = int(uow.session.execute(select(Contact.id)).scalar_one())
    agent = _thread_as(engine, world, "agent@t.test")
    assert not [b for b in agent.button if b.key == f"erase_{contact}"]

    at = _thread_as(engine, world, "root@t.test")
    button = next(b for b in at.button if b.key == f"erase_{contact}")
    assert button.disabled  # not before "I understand"
    at.checkbox(key=f"erase_sure_{contact}").check().run()
    next(b for b in at.button if b.key == f"erase_{contact}").click().run()
    assert not at.exception, at.exception
    assert "Erased: 1 message(s) emptied" in _text(at)
    with UnitOfWork(engine) as uow:
        assert uow.session.execute(select(Message.body)).scalar_one() is None
        assert str(uow.session.execute(select(Contact.display_name)).scalar_one()).startswith("Erased contact")
