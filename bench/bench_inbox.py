"""Inbox benchmark: bulk-generate an inbox, then measure ingest throughput and query latency.

    python bench/bench_inbox.py                # 1,000,000 conversations / 10,000,000 messages
    python bench/bench_inbox.py --scale 0.1    # 100,000 / 1,000,000 (a few minutes less)

Data is generated with COPY (foreign-key triggers off and secondary indexes built after the load,
the way a restore does it), then ANALYZEd. Then:

* ingest: batches of InboundMessage (70 % to existing conversations, with the contact's usual profile
  name; 30 % new contacts) through ``ingest_items`` - messages/s, one worker;
* ``list_conversations`` (queues all / unassigned / mine, manager and agent, first and deeper pages),
  ``list_conversations(search=...)`` (rare and common terms over contact fields and message bodies,
  on the trigram indexes) and ``get_thread`` (newest page and the page before) - p50/p95 in ms, each
  call in its own unit of work, as the app does it.

Uses ``--database-url`` if given, else a throw-away embedded PostgreSQL under a temp directory.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from switchboard.db.engine import scratch_database
from switchboard.db.migrate import upgrade
from switchboard.services.inbox_views import get_thread, list_conversations
from switchboard.services.ingest import ingest_items
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork

N_CHANNELS = 10
N_AGENTS = 50
MSGS_PER_CONV = 10
T_END = datetime(2026, 3, 1, tzinfo=UTC)
SPAN_S = 90 * 86400
NULL = "\\N"  # COPY text format


def _ts(t: datetime) -> str:
    return t.isoformat()


def _copy(raw: Any, table: str, cols: str, rows: Iterator[str], chunk: int = 50_000) -> None:
    with raw.cursor() as cur, cur.copy(f"copy {table} ({cols}) from stdin") as cp:
        buf = io.StringIO()
        for n, line in enumerate(rows, start=1):
            buf.write(line)
            if n % chunk == 0:
                cp.write(buf.getvalue())
                buf = io.StringIO()
        cp.write(buf.getvalue())


def _secondary_indexes(raw: Any, tables: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(table, name, create statement) of every non-primary-key index/unique constraint."""
    out: list[tuple[str, str, str]] = []
    with raw.cursor() as cur:
        for table in tables:
            cur.execute("""select c.conname, pg_get_constraintdef(c.oid) from pg_constraint c
                           join pg_class t on t.oid = c.conrelid where t.relname = %s and c.contype = 'u'""",
                        (table,))
            for name, definition in cur.fetchall():
                out.append((table, name, f'alter table {table} add constraint "{name}" {definition}'))
            cur.execute("""select indexname, indexdef from pg_indexes where tablename = %s
                           and indexname not in (select conname from pg_constraint)""", (table,))
            for name, definition in cur.fetchall():
                out.append((table, name, definition))
    return out


def generate(url: str, scale: float) -> dict[str, Any]:
    n_conv = int(1_000_000 * scale)
    rnd = random.Random(7)
    eng = create_engine(url)
    with eng.begin() as con:
        org = con.execute(text("insert into organizations (name) values ('Bench') returning id")).scalar_one()
        channels = [con.execute(text(
            "insert into channels (organization_id, key, provider, name, webhook_key) "
            "values (:o, :k, 'whatsapp', :k, :w) returning id"), {"o": org, "k": f"ch{i}", "w": f"wk{i}"}
        ).scalar_one() for i in range(N_CHANNELS)]
        agents = [con.execute(text(
            "insert into users (organization_id, email, name, role) values (:o, :e, :n, 'agent') returning id"),
            {"o": org, "e": f"agent{i}@bench.test", "n": f"Agent {i}"}).scalar_one() for i in range(N_AGENTS)]
        manager = con.execute(text("insert into users (organization_id, email, name, role) "
                                   "values (:o, 'm@bench.test', 'Manager', 'manager') returning id"),
                              {"o": org}).scalar_one()
        for i, a in enumerate(agents):
            for j in range(3):
                con.execute(text("insert into channel_permissions (user_id, channel_id, can_view, can_send) "
                                 "values (:u, :c, true, true)"), {"u": a, "c": channels[(i + j) % N_CHANNELS]})
    raw = eng.raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    started = time.perf_counter()
    tables = ("contacts", "conversations", "messages")
    idx = _secondary_indexes(driver, tables)
    with driver.cursor() as cur:
        cur.execute("set session_replication_role = replica")  # no FK triggers during the load
        for table, name, _ in idx:
            if name.startswith("uq_"):
                cur.execute(f'alter table {table} drop constraint "{name}"')
            else:
                cur.execute(f'drop index "{name}"')
    starts = [T_END - timedelta(seconds=rnd.randrange(SPAN_S)) for _ in range(n_conv)]

    def contacts() -> Iterator[str]:
        for i in range(n_conv):
            t = _ts(starts[i])
            yield f"{i + 1}\t{org}\twhatsapp\t+49{i:09d}\tCustomer {i}\t{t}\t{t}\t{{}}\n"

    def conversations() -> Iterator[str]:
        for i in range(n_conv):
            r = rnd.random()
            st, who = ("PENDING", NULL) if r < 0.05 else \
                ("ASSIGNED", str(agents[i % N_AGENTS])) if r < 0.15 else ("COMPLETED", NULL)
            last = starts[i] + timedelta(minutes=MSGS_PER_CONV - 1)
            yield (f"{i + 1}\t{org}\t{channels[i % N_CHANNELS]}\t{i + 1}\t{st}\t{who}\t{int(r < 0.15)}\t"
                   f"message {MSGS_PER_CONV - 1} of conversation {i}\t{_ts(last)}\t{_ts(last)}\t1\t"
                   f"{_ts(starts[i])}\t{_ts(starts[i])}\t{_ts(last)}\n")

    def messages() -> Iterator[str]:
        mid = 0
        for i in range(n_conv):
            ch = channels[i % N_CHANNELS]
            for k in range(MSGS_PER_CONV):
                mid += 1
                inbound = k % 2 == 0
                t = _ts(starts[i] + timedelta(minutes=k))
                author = NULL if inbound else agents[i % N_AGENTS]
                yield (f"{mid}\t{org}\t{i + 1}\t{ch}\t{'INBOUND' if inbound else 'OUTBOUND'}\t"
                       f"{'customer' if inbound else 'agent'}\t{author}\t"
                       f"message {k} of conversation {i}, some words about an order\twamid.{mid}\t"
                       f"{'DELIVERED' if inbound else 'READ'}\t{t}\t{t}\n")

    _copy(driver, "contacts", "id, organization_id, provider, provider_contact_id, display_name, first_seen_at, "
          "last_seen_at, metadata", contacts())
    _copy(driver, "conversations", "id, organization_id, channel_id, contact_id, status, assigned_user_id, "
          "unread_count, last_message_preview, last_message_at, last_inbound_at, cycle_number, "
          "cycle_started_at, created_at, updated_at", conversations())
    _copy(driver, "messages", "id, organization_id, conversation_id, channel_id, direction, author_kind, "
          "author_user_id, body, provider_message_id, status, sent_at, created_at", messages())
    loaded = time.perf_counter() - started
    with driver.cursor() as cur:
        cur.execute("set session_replication_role = origin")
        cur.execute("set maintenance_work_mem = '512MB'")  # GIN (trigram) builds
        for _, _, ddl in idx:
            cur.execute(ddl)
        for table in tables:
            cur.execute(f"select setval(pg_get_serial_sequence('{table}', 'id'), (select max(id) from {table}))")
            cur.execute(f"analyze {table}")
    driver.commit()
    raw.close()
    eng.dispose()
    return {"org": org, "channels": channels, "agents": agents, "manager": manager, "n_conv": n_conv,
            "load_s": loaded, "index_s": time.perf_counter() - started - loaded}


def from_template(pg_dir: Path, scale: float) -> tuple[str, dict[str, Any]]:
    """A copy of the template database of this ``scale`` in the embedded server at ``pg_dir`` (generated
    into the template first when there is none); migrated to the current head after the copy."""
    import json

    import psycopg

    from switchboard.db.engine import embedded_server, sync_url
    from warehouse.extract import conninfo

    server = embedded_server(pg_dir)
    base, name = f"inbox_base_{int(1_000_000 * scale)}", "bench_inbox"
    admin_url = sync_url(server.get_uri("postgres"))
    with psycopg.connect(conninfo(admin_url), autocommit=True) as admin:
        found = admin.execute("select shobj_description(oid, 'pg_database') from pg_database where datname = %s",
                              [base]).fetchone()
        admin.execute(f'drop database if exists "{name}" with (force)')
        if found is None:
            admin.execute(f'create database "{base}"')
    if found is None:
        base_url = sync_url(server.get_uri(base))
        upgrade(base_url)
        info = generate(base_url, scale)
        with psycopg.connect(conninfo(base_url), autocommit=True) as con:  # as autovacuum leaves a live one
            con.execute("vacuum (freeze, analyze)")
        with psycopg.connect(conninfo(admin_url), autocommit=True) as admin:
            admin.execute(f"comment on database \"{base}\" is '{json.dumps(info)}'")  # our own numbers
    else:
        info = json.loads(found[0])
        info["load_s"] = info["index_s"] = 0.0
    t = time.perf_counter()
    with psycopg.connect(conninfo(admin_url), autocommit=True) as admin:
        admin.execute(f'create database "{name}" template "{base}" strategy file_copy')
    url = sync_url(server.get_uri(name))
    upgrade(url)  # a template made before a later migration
    print(f"database copied from the template {base} in {time.perf_counter() - t:.1f} s")
    return url, info


def _backend_cpu(pid: int) -> float | None:
    """User+system CPU seconds of a local PostgreSQL backend (None when the server is not local)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def measure_cases(title: str, cases: list[tuple[str, Callable[[], Any]]], n: int) -> None:
    """Time each case ``n`` times after one warm-up call; print each and all of them together."""
    samples: list[float] = []
    for name, fn in cases:
        fn()  # warm
        s = timed(fn, n)
        samples += s
        print(f"  {name:56s} p50 {pct(s, 50):7.2f} ms  p95 {pct(s, 95):7.2f} ms")
    print(f"{title}: p50 {pct(samples, 50):.2f} ms, p95 {pct(samples, 95):.2f} ms ({len(samples)} calls)")


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def batch_items(rnd: random.Random, n_conv: int, b: int, size: int, *, channel_index: int, new_prefix: str,
                id_prefix: str, start: datetime, raw: bool) -> list[InboundMessage]:
    """Batch ``b`` of inbound messages for one channel: 70 % from existing customers of the channel (with
    their usual profile name, as platforms send it), 30 % from new ones (``new_prefix`` numbers)."""
    items = []
    for k in range(size):
        if rnd.random() < 0.7:
            i = rnd.randrange(n_conv // N_CHANNELS) * N_CHANNELS + channel_index  # existing, same channel
            contact, name = f"+49{i:09d}", f"Customer {i}"
        else:
            contact = f"{new_prefix}{b:04d}{k:06d}"
            name = f"C {contact}"
        items.append(InboundMessage(f"{id_prefix}.{b}.{k}", ContactRef(contact, display_name=name),
                                    start + timedelta(seconds=b * 60 + k / 10), f"new message {b}/{k}",
                                    raw={"b": b, "k": k} if raw else {}))
    return items


def searcher(engine: Any, manager: Actor, term: str) -> Callable[[], Any]:
    """A search of the inbox for ``term`` by ``manager``, in its own unit of work, as the app does it."""
    def run() -> Any:
        with UnitOfWork(engine) as uow:
            return list_conversations(uow, manager, search=term)
    return run


def search_pending(engine: Any, manager: Actor, samples: int) -> None:
    """Search while the new messages' trigrams wait in the pending list of ``ix_messages_body_trgm``
    (ingest appends them there, ``maintain-inbox`` merges them every 30 s): the list's size, searches for
    a new message and an old one, the merge's own time, and the same searches after it."""
    def pending() -> str:
        with engine.connect() as con:
            con.execute(text("create extension if not exists pgstattuple"))
            row = con.execute(text("select pending_pages, pending_tuples from "
                                   "pgstatginindex('ix_messages_body_trgm'::regclass)")).one()
            con.commit()
        return f"{row.pending_pages:,} pages ({row.pending_pages * 8 / 1024:.1f} MB), {row.pending_tuples:,} entries"

    def search(term: str) -> Callable[[], Any]:
        return searcher(engine, manager, term)

    cases = [("a new message", search("new message 17/250")), ("an old message", search("message 3 of conversation 4242"))]
    n = max(10, samples // 2)
    print(f"message search index: pending list {pending()}")
    measure_cases("  search with the pending list", cases, n)
    t = time.perf_counter()
    with engine.connect() as con:
        merged = con.execute(text("select gin_clean_pending_list('ix_messages_body_trgm'::regclass)")).scalar()
        con.commit()
    print(f"  merge (gin_clean_pending_list, as maintain-inbox runs it): {merged:,} pages in "
          f"{time.perf_counter() - t:.2f} s; pending list now {pending()}")
    measure_cases("  search after the merge", cases, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--window", type=int, default=0,
                    help="also print the one-worker figures for every WINDOW messages (a long run: --batches 200 "
                         "--window 20000 shows the cold start and the sustained rate apart)")
    ap.add_argument("--workers", type=int, default=2,
                    help="also measure N concurrent ingest workers (different channels), as overlapping "
                         "process-webhooks runs or several workers do")
    ap.add_argument("--pg-dir", type=Path, default=None,
                    help="a persistent embedded PostgreSQL data directory: the generated inbox is kept there as a "
                         "template database once, and every later run of the same --scale starts from a copy of "
                         "it (seconds instead of the 4 minutes of generating 10 M messages)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.pg_dir and not args.database_url:
        url, info = from_template(args.pg_dir, args.scale)
    else:
        url = scratch_database("bench_inbox", args.database_url)
        upgrade(url)
        info = generate(url, args.scale)
    n_conv = info["n_conv"]
    print(f"generated {n_conv:,} conversations / {n_conv * MSGS_PER_CONV:,} messages: COPY {info['load_s']:.1f} s, "
          f"indexes {info['index_s']:.1f} s (total {time.perf_counter() - t0:.1f} s)")
    engine = create_engine(url, pool_size=4)
    rnd = random.Random(11)
    org, channels = info["org"], info["channels"]

    # --- ingest throughput
    total, took, created_convs = 0, 0.0, 0
    client_cpu: float = 0.0
    server_cpu: float | None = 0.0
    base = T_END + timedelta(hours=1)
    window = [0, 0.0, 0.0, 0.0]  # messages, seconds, client CPU, server CPU of the current window
    for b in range(args.batches):
        ch_idx = b % N_CHANNELS
        items = batch_items(rnd, n_conv, b, args.batch_size, channel_index=ch_idx, new_prefix="+1",
                            id_prefix="bench", start=base, raw=True)
        t = time.perf_counter()
        c0 = time.process_time()
        with UnitOfWork(engine) as uow:
            backend = uow.session.execute(text("select pg_backend_pid()")).scalar_one()
            s0 = _backend_cpu(backend)
            r = ingest_items(uow, channel_id=channels[ch_idx], items=items)
            uow.commit()
            s1 = _backend_cpu(backend)
        took += time.perf_counter() - t
        client_cpu += time.process_time() - c0
        server_cpu = server_cpu + s1 - s0 if s0 is not None and s1 is not None and server_cpu is not None else None
        total += r.messages_created
        created_convs += r.conversations_created
        if args.window:
            window = [window[0] + r.messages_created, window[1] + time.perf_counter() - t,
                      window[2] + time.process_time() - c0,
                      window[3] + (s1 - s0 if s0 is not None and s1 is not None else 0.0)]
            if window[0] >= args.window:
                print(f"  messages {total - window[0]:>9,}-{total:,}: {window[0] / window[1]:,.0f}/s, client CPU "
                      f"{window[2] / window[0] * 1e6:,.0f} µs, server CPU {window[3] / window[0] * 1e6:,.0f} µs per "
                      f"message (load {os.getloadavg()[0]:.1f})", flush=True)
                window = [0, 0.0, 0.0, 0.0]
    cpu = f"client CPU {client_cpu / total * 1e6:,.0f} µs/message"
    if server_cpu is not None:  # a local server: its backend's CPU time too (load-independent figures)
        cpu += f", server CPU {server_cpu / total * 1e6:,.0f} µs/message"
    print(f"ingest: {total:,} messages in {args.batches} batches of {args.batch_size}: "
          f"{total / took:,.0f} messages/s ({created_convs:,} new conversations; {cpu})")

    # --- ingest throughput with concurrent workers (each on its own channels: no row contention)
    if args.workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        batches = [(channels[(b * 7) % N_CHANNELS],
                    batch_items(rnd, n_conv, b, args.batch_size, channel_index=(b * 7) % N_CHANNELS,
                                new_prefix="+2", id_prefix="bench.w", start=base + timedelta(hours=2), raw=False))
                   for b in range(args.batches)]

        def run_worker(w: int) -> int:
            n = 0
            for i in range(w, len(batches), args.workers):
                ch_id, items = batches[i]
                with UnitOfWork(engine) as uow:
                    n += ingest_items(uow, channel_id=ch_id, items=items).messages_created
                    uow.commit()
            return n

        t = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            n_total = sum(pool.map(run_worker, range(args.workers)))
        took_w = time.perf_counter() - t
        print(f"ingest with {args.workers} concurrent workers: {n_total:,} messages in {took_w:.2f} s: "
              f"{n_total / took_w:,.0f} messages/s")

    manager = Actor(info["manager"], org, "manager", "m@bench.test")
    search_pending(engine, manager, args.samples)

    # --- query latency
    agent = Actor(info["agents"][0], org, "agent", "agent0@bench.test")

    def lister(actor: Actor, queue: str, deep: bool) -> Callable[[], Any]:
        cursor = None
        if deep:
            with UnitOfWork(engine) as uow:
                for _ in range(5):
                    cursor = list_conversations(uow, actor, queue=queue, cursor=cursor).next_cursor  # type: ignore[arg-type]

        def run() -> Any:
            with UnitOfWork(engine) as uow:
                return list_conversations(uow, actor, queue=queue, cursor=cursor)  # type: ignore[arg-type]
        return run

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("list all, manager, page 1", lister(manager, "all", False)),
        ("list all, manager, page 6", lister(manager, "all", True)),
        ("list unassigned, manager", lister(manager, "unassigned", False)),
        ("list all, agent (3 of 10 channels)", lister(agent, "all", False)),
        ("list unassigned, agent, page 6", lister(agent, "unassigned", True)),
        ("list mine, agent", lister(agent, "mine", False)),
    ]
    n = max(20, args.samples // len(cases))
    measure_cases("list_conversations", cases, n)

    def search(term: str) -> Callable[[], Any]:
        return searcher(engine, manager, term)

    terms = [
        ("contact name, 1 match", f"Customer {n_conv // 2 + 7}"),
        ("phone fragment", f"49{n_conv // 3:09d}"[:9]),
        ("message text, ~10 conversations", f"of conversation {n_conv // 4}"),
        ("common word", "order"),
        ("no match", "zqxv"),
    ]
    measure_cases("list_conversations(search=...)",
                  [(f"search {name} ({term!r}, {len(search(term)().items)} shown)", search(term))
                   for name, term in terms], n)

    thread_samples: list[float] = []
    older_samples: list[float] = []
    for _ in range(args.samples):
        conv = rnd.randrange(1, n_conv + 1)
        t = time.perf_counter()
        with UnitOfWork(engine) as uow:
            page = get_thread(uow, manager, conv, limit=5)
        thread_samples.append((time.perf_counter() - t) * 1000)
        if page.next_cursor:
            t = time.perf_counter()
            with UnitOfWork(engine) as uow:
                get_thread(uow, manager, conv, before=page.next_cursor, limit=5)
            older_samples.append((time.perf_counter() - t) * 1000)
    print(f"get_thread newest page: p50 {pct(thread_samples, 50):.2f} ms, p95 {pct(thread_samples, 95):.2f} ms; "
          f"older page: p50 {pct(older_samples, 50):.2f} ms, p95 {pct(older_samples, 95):.2f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
