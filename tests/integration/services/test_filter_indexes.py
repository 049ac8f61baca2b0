"""The filters for rare rows find them through their indexes (migrations 0017, 0018 and 0019), not by walking
the organization's rows newest first: each service runs as the page calls it, its own statement is
captured as it goes to PostgreSQL and explained (after ANALYZE, with a few thousand common rows around
the rare ones, as in a real inbox) — the plan must name the index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine, event, text

from switchboard.auth.audit import list_audit
from switchboard.services.event_webhooks import create_event_webhook, list_event_webhooks
from switchboard.services.ingest import ingest_items
from switchboard.services.operations import installation_status
from switchboard.services.outbox import list_dead_letters
from switchboard.services.outbox_views import DEAD_LETTER, list_outbox
from switchboard.uow import UnitOfWork

from .conftest import KEY, World, at, inbound
from .test_outbox_views import _replies


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def _plan(world: World, run: Callable[[UnitOfWork], object], marker: str) -> str:
    """The plan of the one statement of ``run`` that contains ``marker``."""
    with _statements(world.engine) as seen, world.uow() as u:
        run(u)
    [(statement, parameters)] = [s for s in seen if marker in s[0]]
    with world.engine.connect() as con:
        con.exec_driver_sql("set enable_seqscan = off")  # tiny tables: a sequential scan would win anyway
        return "\n".join(r[0] for r in con.exec_driver_sql("explain " + statement, parameters))


def _crowd(world: World) -> None:
    """3,000 ordinary inbound messages, 20,000 sign-ins (one a minute) and 5,000 delivered events around the rare rows
    (3 pending and 2 failed deliveries), then fresh statistics."""
    with world.uow() as u:
        sub = create_event_webhook(u, world.admin, url="https://crm.example.test/hook", events=["message.received"],
                                   secret_key=KEY).view.id
        for status, n in (("DELIVERED", 5000), ("PENDING", 3), ("FAILED", 2)):
            u.session.execute(text(
                "insert into event_deliveries (organization_id, subscription_id, event_id, event_type, payload, status) "
                "select :org, :sub, :status || g, 'message.received', '{}'::jsonb, :status "
                "from generate_series(1, :n) g"), {"org": world.org, "sub": sub, "status": status, "n": n})
    for batch in range(3):
        with world.uow() as u:
            ingest_items(u, channel_id=world.wa, items=[inbound(f"49{batch}{i}", f"crowd-{batch}-{i}", 100 + i)
                                                        for i in range(1000)], now=at(2000))
    with world.uow() as u:
        u.session.execute(text(
            "insert into audit_log (organization_id, actor_user_id, action, target, details, occurred_at) "
            "select :org, :who, 'auth.login', null, '{}'::jsonb, now() - g * interval '1 minute' "
            "from generate_series(1, 20000) g"),
            {"org": world.org, "who": world.a1.user_id})
    with world.engine.connect() as con:
        con.execute(text("analyze messages"))
        con.execute(text("analyze audit_log"))
        con.execute(text("analyze event_deliveries"))
        con.commit()


def _audit_of(world: World, category: str, uow: UnitOfWork) -> object:
    return list_audit(uow, world.admin, category=category)


def test_rare_row_filters_use_their_indexes(world: World) -> None:
    _replies(world)  # one dead letter among the outbound messages
    _crowd(world)
    outbox = "ORDER BY messages.id DESC"
    assert "ix_messages_dead_letter" in _plan(
        world, lambda u: list_outbox(u, world.manager, status=DEAD_LETTER), outbox)
    assert "ix_messages_outbound_trouble" in _plan(
        world, lambda u: list_outbox(u, world.manager, status="FAILED"), outbox)
    assert "ix_messages_dead_letter" in _plan(world, lambda u: list_dead_letters(u, world.manager), "is_dead_letter")
    assert "ix_messages_dead_letter" in _plan(world, installation_status, "is_dead_letter")
    assert "ix_event_deliveries_open" in _plan(world, lambda u: list_event_webhooks(u, world.admin),
                                               "event_deliveries")
    with world.uow() as u:  # only the open deliveries are joined: the counts are still each status's own
        [hook] = list_event_webhooks(u, world.admin)
    assert (hook.pending, hook.failed) == (3, 2)
    audit = "FROM audit_log"
    for category in ("permissions", "saved replies", "API keys and event webhooks"):  # "_" escaped; two prefixes
        assert "ix_audit_log_org_action" in _plan(world, partial(_audit_of, world, category), audit), category
    assert "ix_audit_log_org_actor" in _plan(
        world, lambda u: list_audit(u, world.admin, by_user_id=world.admin.user_id), audit)
    # up to a time far back (the first hour of the 20,000 sign-ins): read by the time index, not by walking
    # every newer entry (a recent one walks back from the newest: the planner chooses)
    day = datetime.now(UTC) - timedelta(minutes=20000 - 60)
    assert "ix_audit_log_org_time" in _plan(world, lambda u: list_audit(u, world.admin, until=day), audit)
