"""Exactly-once sends under faults, with real processes: sender workers (``tests.integration.send_worker``)
against the WhatsApp sandbox (its fault injection), the receiver and the webhook processing in this
process. After each fault every message was accepted by the sandbox exactly once and is SENT, or was
never accepted and is shown as UNKNOWN ("may have been sent"); the sandbox's own count per idempotency
key (``GET /_sandbox/keys``) proves it.

Faults: a 429 storm with Retry-After, a 5xx storm, answers too slow for the client (accepted or not),
a worker killed with SIGKILL in the middle of 200 sends, PostgreSQL restarted while sending.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from switchboard.db.schema import ConversationEvent
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.sending import send_outbox_once
from tests.helpers import private_postgres
from tests.integration.send_rig import finish, running


def test_a_429_storm_and_a_5xx_storm_send_each_message_once(db_url: str) -> None:
    with running(db_url) as rig:
        keys = rig.enqueue(120)
        rig.fail_next(code=130429, status=429, retry_after=1, count=25)
        rig.fail_next(code=131000, status=503, count=25)
        finish(rig.worker(idle=7), rig.worker(idle=7))  # a second 503 of one message backs off 4-5 s
        statuses = rig.settled(keys)
        assert set(statuses.values()) <= {"SENT", "DELIVERED", "READ"}
        assert sorted(rig.counts()) == sorted(keys)


def test_answers_too_slow_are_unknown_until_the_status_webhook_settles_them(db_url: str) -> None:
    with running(db_url, timeout_seconds=0.5) as rig:
        keys = rig.enqueue(40)
        rig.fail_next(accept=True, delay=1.5, count=4)  # taken by the platform, answered too late
        rig.fail_next(code=131000, status=500, delay=1.5, count=2)  # too late, and refused: never sent
        finish(rig.worker(), rig.worker())
        statuses = rig.settled(keys)
        counts = rig.counts()
        assert sum(1 for k in keys if statuses[k] == "UNKNOWN") == 2  # a person decides: resend or mark sent
        assert sum(counts.values()) == 38 and set(counts.values()) == {1}
        with UnitOfWork(rig.engine) as uow:  # the accepted ones were settled by their status webhook
            by_report = uow.session.execute(select(func.count()).select_from(ConversationEvent).where(
                ConversationEvent.type == "MESSAGE_SENT",
                ConversationEvent.data["settled_by"].astext == "platform report")).scalar_one()
        assert by_report == 4


def test_a_worker_killed_in_the_middle_of_200_sends(db_url: str) -> None:
    with running(db_url, rate=60.0) as rig:  # about 3.5 s of sending
        keys = rig.enqueue(200)
        first = rig.worker(lease=6)  # long enough for the status webhook of a send it never recorded
        rig.wait_until(lambda: sum(rig.counts().values()) >= 60)
        first.send_signal(signal.SIGKILL)  # mid-batch: claimed jobs, maybe one sent but not recorded
        first.wait()
        sent_before = sum(rig.counts().values())
        assert sent_before < 200
        second = rig.worker(lease=6)
        finish(second)
        rig.settled(keys)
        assert sorted(rig.counts()) == sorted(keys) and set(rig.counts().values()) == {1}


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="restarts its own embedded PostgreSQL")
def test_postgresql_restarted_while_sending(tmp_path: Path) -> None:
    with private_postgres(tmp_path, "faults") as pg, running(pg.url, rate=60.0) as rig:
        keys = rig.enqueue(150)
        worker = rig.worker(lease=8)  # the lease outlives the restart: the webhooks settle sends first
        rig.wait_until(lambda: sum(rig.counts().values()) >= 40)
        pg.restart()
        finish(worker)
        rig.settled(keys)
        assert sorted(rig.counts()) == sorted(keys) and set(rig.counts().values()) == {1}


def test_a_worker_whose_lease_ran_out_does_not_call_the_platform(db_url: str) -> None:
    """The worker checks it still owns each job right before the platform call: a slow first send eats
    the batch's lease, so the second job is not sent by this worker (another one will take it)."""
    with running(db_url, timeout_seconds=5.0, statuses=False) as rig:
        first, second = rig.enqueue(2)
        rig.fail_next(accept=True, delay=1.5)  # the first send is taken, and answered after 1.5 s
        connectors = ConnectorCache(rig.engine, get_settings().secret_key_bytes())
        try:
            stats = send_outbox_once(rig.engine, connectors, lease_seconds=1)
            assert (stats.claimed, stats.sent, stats.stale) == (2, 1, 1)
            assert rig.counts() == {first: 1}  # the platform never saw the second from this worker
            assert rig.statuses() == {first: "SENT", second: "PENDING"}
            assert send_outbox_once(rig.engine, connectors).sent == 1  # due again: the next round sends it
        finally:
            connectors.close()
        assert rig.counts() == {first: 1, second: 1}
