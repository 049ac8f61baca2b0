"""Incremental scoping: which conversations and keys a build recomputes, and how a model is updated.

* **Conversations in scope** (``_scope``): those whose raw rows changed in this build (filled by
  :func:`warehouse.extract.apply_incremental`) plus the open conversations of the last
  ``OPEN_CONVERSATION_LOOKBACK_DAYS`` (their SLA status and waiting times move with time); every
  conversation when a calendar or a reference table changed. ``scope: conversation`` models are
  recomputed for them by delete + insert.
* **Keys in scope** of ``scope: key`` models (the daily marts): computed from the rows that changed in
  their inputs — ``_delta_<input>``, the symmetric difference of an input table's old and new rows, or
  a view's ``<name>.delta.sql`` — through the model's own ``key_filter``/``key_since`` expressions.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from warehouse import extract, metrics
from warehouse.dag import Model
from warehouse.errors import BuildError
from warehouse.render import IN_SCOPE, render, since_at_sql, since_min_variable

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Replaced:
    """How a table the build updated in place is published: the lake's rows ``where`` holds are
    deleted and the rows of ``_new_<model>`` that ``new_rows`` holds are inserted."""

    where: str
    new_rows: str = "true"


def changed_conversations(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The rows of the conversations whose rows of ``name`` changed in this build (``_delta_<name>``).

    With a lower bound on ``conversation_id`` held in a variable (a constant to the planner, so a scan of
    a table stored in conversation order skips the row groups below it; NULL, nothing, when none changed)."""
    con.execute(f"set variable delta_min_{name} = (select min(conversation_id) from _delta_{name})")  # noqa: S608 (identifiers from code)
    return (f"conversation_id >= getvariable('delta_min_{name}') and "  # noqa: S608 (identifiers from code)
            f"conversation_id in (select conversation_id from _delta_{name})")


# the published models that are the reference tables as extracted (renamed and cast only)
REFERENCE_MODELS = ("stg_organizations", "stg_channels", "stg_users")


def reference_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """Hash of the small reference tables (organizations with SLA targets, channels, users).

    Names, emails and SLA targets are copied into conversation rows and daily marts: when any of them
    changes, an incremental build recomputes everything (rare; the tables are small).
    """
    h = hashlib.sha256()
    for name in ("organizations", "channels", "users"):
        for r in con.execute(f"select * from raw_{name} order by id").fetchall():  # noqa: S608 (identifiers from code)
            h.update(repr(r).encode())
        h.update(b"|")
    return h.hexdigest()


def data_range(con: duckdb.DuckDBPyConnection, above: dict[str, int] | None,
               previous: list[str] | None) -> tuple[datetime, datetime] | None:
    """The earliest and latest instant in the raw tables (None when empty).

    Incrementally only the rows with ids ``above`` the previous watermarks (less the overlap still
    watched for) are read — the raw tables only grow between full builds — and ``previous`` is widened.
    """
    ids = above or {}
    floor = {name: ids.get(name, 0) - extract.OVERLAP_IDS if above is not None else -1
             for name in ("messages", "conversation_events", "presence_events")}
    row = con.execute("""
        select least(
                   (select min(sent_at) from raw_messages where id > $messages),
                   (select min(occurred_at) from raw_conversation_events where id > $conversation_events),
                   (select min(occurred_at) from raw_presence_events where id > $presence_events)),
               greatest(
                   (select max(sent_at) from raw_messages where id > $messages),
                   (select max(occurred_at) from raw_conversation_events where id > $conversation_events),
                   (select max(occurred_at) from raw_presence_events where id > $presence_events))
    """, floor).fetchone()
    found = [(row[0], row[1])] if row and row[0] is not None else []
    if previous:
        found.append((datetime.fromisoformat(previous[0]), datetime.fromisoformat(previous[1])))
    if not found:
        return None
    return min(lo for lo, _ in found), max(hi for _, hi in found)


def set_scope(con: duckdb.DuckDBPyConnection, *, recompute_all: bool, now: datetime) -> int:
    """Complete ``_scope`` (the changed conversations) for this build; returns how many are in it."""
    if recompute_all:
        con.execute("create or replace temp table _scope as select id as conversation_id from raw_conversations")
    else:
        lookback = now - timedelta(days=metrics.OPEN_CONVERSATION_LOOKBACK_DAYS)
        con.execute("insert into _scope select id from raw_conversations where status <> 'COMPLETED' "
                    "and coalesce(cycle_started_at, last_message_at, created_at) >= ?", [lookback])
        con.execute("create or replace temp table _scope as select distinct conversation_id from _scope")
    con.execute("set variable scope_min_conversation_id = (select min(conversation_id) from _scope)")
    row = con.execute("select count(*) from _scope").fetchone()
    return int(row[0]) if row else 0


def _make_delta(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """``_delta_<name>``: the rows that changed in this build, old and new versions."""
    # no conversation-scoped model stamps the build's time on its rows: a recomputed row that came out
    # the same is not a change (an open conversation's SLA status is as of the build: its build state)
    cols = ", ".join(f'"{r[0]}"' for r in con.execute(f"describe _new_{name}").fetchall())  # noqa: S608 (identifiers from code)
    # set semantics (EXCEPT, not EXCEPT ALL: ~7x faster) are exact here: every model's rows are unique
    con.execute(f"create or replace temp table _delta_{name} as "  # noqa: S608 (identifiers from code)
                f"(select {cols} from _new_{name} except select {cols} from _old_{name}) union all "
                f"(select {cols} from _old_{name} except select {cols} from _new_{name})")


def _fill_keys(con: duckdb.DuckDBPyConnection, m: Model) -> tuple[str, int]:
    """Create ``_keys_<m>`` / ``_since_<m>`` from the changed source rows; return the delete condition
    and the number of keys."""
    sources = m.key_sources
    kinds = {ks.kind for ks in sources}
    if len(kinds) != 1 or len(m.key) != 3:
        raise BuildError(f"model {m.name}: scope: key needs a 3-column key and either key_filter or key_since "
                         "placeholders (not both)")
    selects = " union all ".join(
        f"select ({ks.org})::bigint, ({ks.entity})::bigint, ({ks.day})::date from _delta_{ks.source}"  # noqa: S608 (identifiers from code)
        for ks in sources)
    org, ent, day = m.key
    if kinds == {"key_filter"}:
        table = f"_keys_{m.name}"
        con.execute(f"create or replace temp table {table} as select distinct * from ({selects}) "  # noqa: S608 (identifiers from code)
                    "k(organization_id, entity_id, metric_date) where metric_date is not null")
        con.execute(f"set variable key_min_{m.name} = (select min(metric_date) from {table})")  # noqa: S608 (identifiers from code)
        where = f"({org}, {ent}, {day}) in (select organization_id, entity_id, metric_date from {table})"  # noqa: S608 (identifiers from code)
    else:
        table = f"_since_{m.name}"
        con.execute(f"create or replace temp table {table} as select organization_id, entity_id, "  # noqa: S608 (identifiers from code)
                    f"min(since_date) as since_date from ({selects}) k(organization_id, entity_id, since_date) "
                    "where since_date is not null group by all")
        # the earliest since_at (see render.key_since), typed as the model compares it: since_bound
        con.execute(f"set variable {since_min_variable(m.name)} = "  # noqa: S608 (identifiers from code)
                    f"(select {since_at_sql('min(since_date)')} from {table})")
        where = (f"exists (select 1 from {table} s where s.organization_id = {m.name}.{org} "  # noqa: S608 (identifiers from code)
                 f"and s.entity_id = {m.name}.{ent} and {m.name}.{day} >= s.since_date)")
    row = con.execute(f"select count(*) from {table}").fetchone()  # noqa: S608 (identifiers from code)
    return where, int(row[0]) if row else 0


def materialize(con: duckdb.DuckDBPyConnection, m: Model, by_name: dict[str, Model], *, scoped: bool,
                keyed: bool = False, delta: bool = False, timings: dict[str, float] | None = None,
                replaced: dict[str, Replaced] | None = None, unchanged: set[str] | None = None) -> int | None:
    """Create or update one model; returns the number of keys recomputed by a keyed run.

    ``scoped``: an incremental build (conversation-scoped models recompute ``_scope`` only);
    ``keyed``: key-scoped models recompute their keys in scope only; ``delta``: a keyed model reads
    this one, so keep its changed rows in ``_delta_<name>``. A table updated in place (delete +
    insert) gets how to publish it in ``replaced`` (a conversation-scoped table whose changed rows are
    kept: only the conversations whose rows changed); its new rows stay in ``_new_<name>``. A keyed
    model with no key in scope is left as it is (nothing runs) and added to ``unchanged``.
    """
    if m.materialized == "view":
        con.execute(f"create or replace view {m.name} as {render(m, by_name)}")
        if delta:
            if m.delta_sql is None:
                raise BuildError(f"view {m.name} is used by key_filter/key_since but has no {m.name}.delta.sql")
            con.execute(f"create or replace temp table _delta_{m.name} as {m.delta_sql}")
        return None
    n_keys: int | None = None
    if scoped and m.conversation_scoped:
        sql, where = render(m, by_name, scoped=True), IN_SCOPE
    elif keyed and m.key_scoped:
        sql = render(m, by_name, keyed=True)
        where, n_keys = _fill_keys(con, m)
        if n_keys == 0:  # none of its input rows changed: its rows stay, and so do the lake's
            if delta:
                for side in ("old", "new"):
                    con.execute(f"create or replace temp table _{side}_{m.name} as "  # noqa: S608 (identifiers from code)
                                f"select * from {m.name} limit 0")
                _make_delta(con, m.name)
            if unchanged is not None:
                unchanged.add(m.name)
            return n_keys
    elif delta:
        sql, where = render(m, by_name), "true"
    else:
        con.execute(f"create or replace table {m.name} as {render(m, by_name)}")  # noqa: S608 (identifiers from code)
        return None
    steps = [
        ("old", f"create or replace temp table _old_{m.name} as select * from {m.name} where {where}" if delta else ""),  # noqa: S608 (identifiers from code)
        ("new", f"create or replace temp table _new_{m.name} as select * from ({sql})"),  # noqa: S608 (identifiers from code)
        ("delete", f"delete from {m.name} where {where}"),  # noqa: S608 (identifiers from code)
        ("insert", f"insert into {m.name} by name select * from _new_{m.name}"),  # noqa: S608 (identifiers from code)
    ]
    for step, statement in steps:
        if statement:
            started = time.perf_counter()
            con.execute(statement)
            if timings is not None:
                timings[f"{m.name}/{step}"] = time.perf_counter() - started
    if delta:
        _make_delta(con, m.name)
    if replaced is not None:
        # a recomputed conversation whose rows came out the same (most open ones) is not republished
        changed = changed_conversations(con, m.name) if delta and scoped and m.conversation_scoped else None
        replaced[m.name] = Replaced(changed, changed) if changed else Replaced(where)
    return n_keys


def run_models(con: duckdb.DuckDBPyConnection, models: list[Model], *, scoped: bool, keyed: bool,
               timings: dict[str, float], keys: dict[str, int], replaced: dict[str, Replaced],
               unchanged: set[str]) -> list[str]:
    """Materialize every model in order; ``keys`` gets the keys recomputed per keyed model, ``replaced``
    how to publish each table updated in place, ``unchanged`` the keyed models left as they were (see
    :func:`materialize`)."""
    by_name = {m.name: m for m in models}
    delta_needed = {ks.source for m in models if m.key_scoped for ks in m.key_sources} if keyed else set()
    built: list[str] = []
    for m in models:
        t = time.perf_counter()
        try:
            n_keys = materialize(con, m, by_name, scoped=scoped, keyed=keyed, delta=m.name in delta_needed,
                                 timings=timings, replaced=replaced, unchanged=unchanged)
        except duckdb.Error as exc:
            raise BuildError(f"model {m.layer}/{m.name} failed: {exc}") from exc
        if n_keys is not None:
            keys[m.name] = n_keys
        timings[m.name] = time.perf_counter() - t
        built.append(m.name)
    return built


def previous_state(prior: dict[str, Any], models_fp: str, full: bool) -> tuple[dict[str, Any], bool]:
    """The state an incremental build continues from, and whether the build must be full instead."""
    if full:
        return {}, True
    if prior.get("models_fingerprint") != models_fp:
        if prior:
            log.info("warehouse models changed since the last build: rebuilding in full")
        return {}, True
    return prior, False
