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
            assert listener.wait(30.0) is True  # woken by the notification (a timeout returns False)
            t.join()
        started = time.monotonic()
        assert listener.wait(0.5) is False  # nothing sent: returns False after the timeout…
        assert time.monotonic() - started >= 0.45  # …having waited for it (how fast it wakes: bench, not here)


def test_pooled_connections_keep_transactions(engine: Engine) -> None:
    with NotifyListener(engine, "sb_test") as listener:
        listener.wait(0.1)
    for _ in range(3):  # every pooled connection still runs real transactions with savepoints
        with engine.connect() as con:
            con.begin()
            first = con.execute(text("select txid_current()")).scalar_one()
            con.begin_nested().commit()
            # one transaction across statements and a savepoint: autocommit did not leak into the pool
            assert con.execute(text("select txid_current()")).scalar_one() == first
            con.rollback()
