"""Audit log filters: the newest page of a category or of one person among years of sign-ins.

Starts a scratch embedded PostgreSQL (or ``--database-url``), migrates it, writes ``--rows`` audit
entries for one organization the way a busy installation has them — almost all sign-ins, a few hundred
channel changes, twenty permission changes, imports and erasures — and times ``list_audit`` (the audit
page's one read) for every category, for one person and up to a day (recent, a year back, near the
start of the log), first with migrations 0018's and 0019's indexes, then without them (dropped in the
same database), and how long each takes to build (the upgrade's write lock on ``audit_log``). Entries
are one a minute (a million: almost two years). Prints the median of ``--samples`` calls per case.

    .venv/bin/python bench/bench_audit.py --rows 1000000

Not part of the test suite: timing belongs here; tests/integration/services/test_filter_indexes.py
checks that the plans use the indexes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

from switchboard.auth.audit import CATEGORIES, list_audit
from switchboard.db.engine import scratch_database
from switchboard.db.migrate import upgrade
from switchboard.services.organizations import create_organization
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

RARE = {"permission.changed": 20, "channel.paused": 300, "import-events": 3, "contact.erased": 5,
        "api_key.created": 12, "organization.updated": 40, "outbox.cancelled": 60, "saved_reply.created": 80}
PEOPLE = 200
INDEXES = {"ix_audit_log_org_action": "(organization_id, action text_pattern_ops, id)",  # 0018
           "ix_audit_log_org_actor": "(organization_id, actor_user_id, id)",  # 0018
           "ix_audit_log_org_time": "(organization_id, occurred_at)"}  # 0019


def seed(url: str, rows: int) -> tuple[int, list[int]]:
    engine = create_engine(url)
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Bench")
        uow.commit()
    with engine.begin() as con:
        users = [int(r[0]) for r in con.execute(text(
            "insert into users (organization_id, email, name, role, status) "
            "select :org, 'u' || g || '@bench.test', 'U' || g, 'agent', 'active' from generate_series(1, :n) g "
            "returning id"), {"org": org, "n": PEOPLE})]
        # sign-ins spread over everyone, the rare actions at random places in the log
        con.execute(text(
            "insert into audit_log (organization_id, actor_user_id, action, details, occurred_at) "
            "select :org, (:lo + g % :n), case when g % 50 = 0 then 'auth.login_failed' else 'auth.login' end, "
            "'{}'::jsonb, now() - (:rows - g) * interval '1 minute' from generate_series(1, :rows) g"),
            {"org": org, "lo": users[0], "n": PEOPLE, "rows": rows})
        for action, n in RARE.items():
            con.execute(text(
                "update audit_log set action = :action where id in "
                "(select id from audit_log where action = 'auth.login' order by random() limit :n)"),
                {"action": action, "n": n})
        con.execute(text("analyze audit_log"))
    engine.dispose()
    return org, users


def measure(url: str, org: int, person: int, rows: int, samples: int, title: str) -> None:
    engine = create_engine(url, pool_size=2)
    admin = Actor.system(org)
    now = datetime.now(UTC)
    start = now - timedelta(minutes=rows)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("everything", {}), *((c, {"category": c}) for c in CATEGORIES), ("one person", {"by_user_id": person}),
        ("one person, channels", {"by_user_id": person, "category": "channels"}),
        ("up to 7 days ago", {"until": now - timedelta(days=7)}),
        ("up to a year ago", {"until": now - timedelta(days=365)}),
        ("up to a week after the start", {"until": start + timedelta(days=7)}),
        ("up to an hour after the start", {"until": start + timedelta(hours=1)}),
        ("permissions, up to a year ago", {"category": "permissions", "until": now - timedelta(days=365)}),
    ]
    print(title)
    for name, kw in cases:
        times, found = [], 0
        for _ in range(samples):
            t = time.perf_counter()
            with UnitOfWork(engine) as uow:
                found = len(list_audit(uow, admin, limit=200, **kw))
            times.append(time.perf_counter() - t)
        print(f"  {name:32s} {statistics.median(times) * 1000:8.1f} ms  ({found} entries)")
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    url = scratch_database("bench_audit", args.database_url)
    upgrade(url)
    t = time.perf_counter()
    org, users = seed(url, args.rows)
    print(f"{args.rows:,} audit entries written in {time.perf_counter() - t:.1f} s")
    measure(url, org, users[7], args.rows, args.samples, "with migrations 0018's and 0019's indexes:")
    engine = create_engine(url)
    with engine.begin() as con:
        for name in INDEXES:
            con.execute(text(f"drop index {name}"))
    engine.dispose()
    measure(url, org, users[7], args.rows, args.samples, "without them (ix_audit_log_org only):")
    engine = create_engine(url)  # what the upgrade costs: a plain create index blocks writes that long
    for name, ddl in INDEXES.items():
        t = time.perf_counter()
        with engine.begin() as con:
            con.execute(text(f"create index {name} on audit_log {ddl}"))
        print(f"  building {name}: {time.perf_counter() - t:.2f} s")
    engine.dispose()


if __name__ == "__main__":
    main()
