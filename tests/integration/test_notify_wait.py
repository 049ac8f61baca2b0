"""The long-poll flows wake on NOTIFY and keep working afterwards (no hang after a wake-up)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, text

from pipelines.flows import _wait_for_notify


def test_wakes_on_notify_and_can_wait_again(engine: Engine) -> None:
    def notify_soon() -> None:
        time.sleep(0.3)
        with engine.begin() as con:
            con.execute(text("select pg_notify('sb_test', 'x')"))

    for _ in range(3):  # the same pooled connection is reused after each wake-up
        t = threading.Thread(target=notify_soon)
        t.start()
        started = time.monotonic()
        _wait_for_notify(engine, "sb_test", 5.0)
        assert time.monotonic() - started < 3.0
        t.join()
    started = time.monotonic()
    _wait_for_notify(engine, "sb_test", 0.5)  # nothing sent: returns after the timeout
    assert 0.4 < time.monotonic() - started < 3.0
