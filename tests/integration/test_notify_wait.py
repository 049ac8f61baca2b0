"""The long-poll flows wake on NOTIFY, keep working afterwards, and never leak autocommit into the pool."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, text

from pipelines.flows import NotifyListener


def test_wakes_on_notify_and_can_wait_again(engine: Engine) -> None:
    def notify_soon() -> None:
        time.sleep(0.3)
        with engine.begin() as con:
            con.execute(text("select pg_notify('sb_test', 'x')"))

    with NotifyListener(engine, "sb_test") as listener:
        for _ in range(3):
            t = threading.Thread(target=notify_soon)
            t.start()
            started = time.monotonic()
            assert listener.wait(5.0)
            assert time.monotonic() - started < 3.0
            t.join()
        started = time.monotonic()
        assert not listener.wait(0.5)  # nothing sent: returns after the timeout
        assert 0.4 < time.monotonic() - started < 3.0


def test_pooled_connections_keep_transactions(engine: Engine) -> None:
    with NotifyListener(engine, "sb_test") as listener:
        listener.wait(0.1)
    for _ in range(3):  # every pooled connection still runs real transactions with savepoints
        with engine.connect() as con:
            con.begin()
            con.begin_nested().commit()
            assert con.execute(text("select now() = statement_timestamp()")).scalar() is not None
            con.rollback()
