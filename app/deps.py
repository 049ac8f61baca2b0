"""Process-wide resources for the Streamlit app (shared by every session of the process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import streamlit as st
from sqlalchemy import Engine

from switchboard.db.engine import make_engine
from switchboard.errors import SwitchboardError
from switchboard.settings import Settings, get_settings
from switchboard.uow import UnitOfWork

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def engine() -> Engine:
    return make_engine(pool_size=5, max_overflow=10)


def settings() -> Settings:
    return get_settings()


def secret_key() -> bytes:
    return get_settings().secret_key_bytes()


@contextmanager
def uow() -> Iterator[UnitOfWork]:
    with UnitOfWork(engine()) as u:
        yield u


def call(service: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run one service in its own unit of work and commit once: ``call(accept, actor, conversation_id)``.

    The page is the entrypoint, so it owns the transaction: services never commit; a service that
    raises leaves nothing written.
    """
    with UnitOfWork(engine()) as u:
        result = service(u, *args, **kwargs)
        u.commit()
        return result


def act(done: str, service: Callable[..., object], *args: object, **kwargs: object) -> bool:
    """Run one service (``call``) for a button: show ``done`` on success, the refusal's sentence if the
    service refuses. Returns whether it worked."""
    try:
        call(service, *args, **kwargs)
    except SwitchboardError as exc:
        st.error(str(exc))
        return False
    st.success(done)
    return True


_OUTCOME = "_deps_outcome"


def act_and_rerun(done: str, service: Callable[..., object], *args: object, **kwargs: object) -> None:
    """``act`` for a page that shows what the action changes (a table above the button): run the
    service, keep its outcome for the next run (:func:`show_outcome` shows it there) and rerun."""
    try:
        call(service, *args, **kwargs)
    except SwitchboardError as exc:
        st.session_state[_OUTCOME] = ("error", str(exc))
    else:
        st.session_state[_OUTCOME] = ("success", done)
    st.rerun()


def show_outcome() -> None:
    """The outcome :func:`act_and_rerun` kept, once."""
    outcome = st.session_state.pop(_OUTCOME, None)
    if outcome:
        (st.error if outcome[0] == "error" else st.success)(outcome[1])
