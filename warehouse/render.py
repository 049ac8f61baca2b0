"""The model renderer: ``{{ macro('arg', …) }}`` in a model's SQL → plain DuckDB SQL.

Macros (arguments are SQL expressions or names, written as quoted strings; keyword arguments allowed):

* ``ref('model')``, ``source('table')``, ``var('name')`` — dependencies and constants;
* ``key_filter(source, org, entity, day)`` / ``key_since(…)`` — incremental key scoping of the daily
  marts (:class:`warehouse.dag.KeySource`); ``key_since`` is a relation ``(organization_id, entity_id,
  since_date, since_at)``, ``since_at`` an instant safely before the local day ``since_date`` starts;
  ``key_since(…, carry='column')`` adds ``carried``, the column's value in the model's own last row
  before ``since_date``; ``since_bound(ts)`` is ``ts >=`` the build's earliest ``since_at`` (``true``
  in a full build), a constant bound that lets a scan skip old row groups;
* ``quarter_hour(ts)`` — the 15-minute bucket of an instant, the key of the calendar tables;
* ``utc_offset_join(alias, ts, timezone)`` and ``local_time(ts, alias)`` — local time in an IANA
  timezone through ``cal_utc_offsets`` (an equi-join, as fast as arithmetic);
* ``business_clock_join(alias, ts, channel)`` and ``business_clock(alias, ts)`` — the business clock
  (milliseconds of open time) of a channel's calendar at an instant through ``cal_business_buckets``;
  a business duration is the difference of two clocks;
* ``sla_status(value, target, elapsed, reached, unanswered=…, none=…)`` — met / breached /
  unanswered / pending against a target;
* ``duration_stats(value, stem, count=…, where=…, business=True)`` — the count and each statistic of
  :data:`warehouse.metrics.STATS` of a duration column (and its ``_business_ms`` twin) as
  ``<prefix>_<stem>_ms`` columns; ``stat_columns(alias, stem, count=…)`` lists them again in a final
  select;
* ``key_spine('organization_id, user_id, metric_date', 'cte_a', 'cte_b', …)`` — the distinct keys of
  several aggregates (the spine a daily mart left-joins them to, ``left_join_using(keys, 'cte as a', …)``);
* ``metric_values('response')`` / ``metric_filter('response')`` — the occurrences of a catalogue time
  metric (:data:`warehouse.metrics.TIME_METRICS`) in its row-level mart: its day, channel, agent and
  both duration columns under common names, and its row filter;
* ``metric_occurrences()`` — a *catalogue* macro: the occurrences of every catalogue time metric, one
  ``union all`` branch per metric (its mart, values, row filter and ``key_filter`` on its day column;
  ``time_metric_daily``). Catalogue macros are expanded when the model is loaded
  (:func:`expand_catalogue`), so that the refs and key filters they write are the model's own: a metric
  added to the catalogue is in the model without an edit.

Rendering also scopes an incremental run: a conversation-scoped ``ref`` reads only the conversations
in ``_scope``, and ``key_filter``/``key_since`` read the keys in scope (``_keys_<model>`` /
``_since_<model>``, filled by :mod:`warehouse.incremental`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warehouse import metrics
from warehouse.calendar import bucket_sql
from warehouse.errors import BuildError

if TYPE_CHECKING:
    from warehouse.dag import Model

VARS: dict[str, int] = {"presence_gap_cap_seconds": metrics.PRESENCE_GAP_CAP_SECONDS}

# The rows of the conversations in scope. The lower bound lets scans skip row groups by zone map: the
# conversation-scoped tables are stored in conversation_id order (ids grow with time, and recent
# conversations are what an incremental build recomputes).
IN_SCOPE = ("conversation_id >= getvariable('scope_min_conversation_id') "
            "and conversation_id in (select conversation_id from _scope)")

_CALL = re.compile(r"\{\{\s*(\w+)\((.*?)\)\s*\}\}", re.DOTALL)
# a day expression that is a plain date column, or a timestamp column cast to date
_DAY_COLUMN = re.compile(r"(\w+)(::date)?")
_SEP = ",\n        "


@dataclass(frozen=True)
class MacroCall:
    name: str
    args: tuple[str, ...]
    kwargs: dict[str, Any]


def _parse(name: str, inner: str) -> MacroCall:
    try:
        call = ast.parse(f"_({inner})", mode="eval").body
        assert isinstance(call, ast.Call)
        args = tuple(ast.literal_eval(a) for a in call.args)
        kwargs = {str(k.arg): ast.literal_eval(k.value) for k in call.keywords}
    except (SyntaxError, ValueError, AssertionError) as exc:
        raise BuildError(f"cannot read the macro call {{{{ {name}({inner}) }}}}: {exc}") from exc
    return MacroCall(name, args, kwargs)


def macro_calls(sql: str) -> list[MacroCall]:
    return [_parse(m.group(1), m.group(2)) for m in _CALL.finditer(sql)]


# --- macros that need no context -----------------------------------------------------------------

def local_time(ts: str, offsets: str) -> str:
    return f"make_timestamp(epoch_us({ts}) + {offsets}.utc_offset_seconds * 1000000)"


def utc_offset_join(alias: str, ts: str, timezone: str) -> str:
    return (f"left join cal_utc_offsets as {alias}\n"
            f"        on {alias}.timezone = {timezone} and {alias}.quarter_at = {bucket_sql(ts)}")


def business_clock_join(alias: str, ts: str, channel: str) -> str:
    return (f"left join cal_business_buckets as {alias}\n"
            f"        on {alias}.channel_id = {channel} and {alias}.bucket_at = {bucket_sql(ts)}")


def business_clock(alias: str, ts: str) -> str:
    """The business clock at ``ts`` (see :func:`warehouse.calendar.build_business_buckets`)."""
    return (f"{alias}.clock_ms + least(greatest(epoch_ms({ts}) - {alias}.s1_ms, 0), {alias}.l1_ms)"
            f" + least(greatest(epoch_ms({ts}) - {alias}.s2_ms, 0), {alias}.l2_ms)")


def sla_status(value: str, target: str, elapsed: str, reached: str, unanswered: str | None = None,
               none: str | None = None) -> str:
    """``met``/``breached`` once ``reached`` (``value`` vs ``target``); ``unanswered`` when that
    condition holds first; else ``breached`` once ``elapsed`` passed the target, else ``pending``;
    NULL when ``none`` holds (nothing to judge)."""
    whens = [f"when {none} then null"] if none else []
    whens.append(f"when {reached} then case when {value} <= {target} then 'met' else 'breached' end")
    if unanswered:
        whens.append(f"when {unanswered} then 'unanswered'")
    whens.append(f"when {elapsed} > {target} then 'breached'")
    return "case\n            " + "\n            ".join(whens) + "\n            else 'pending'\n        end"


def _business(value: str) -> str:
    unit = f"_{metrics.DURATION_UNIT}"
    if not value.endswith(unit):
        raise BuildError(f"duration column {value!r} must end with {unit}")
    return value[: -len(unit)] + f"_business{unit}"


def duration_stats(value: str, stem: str, count: str | None = None, where: str | None = None,
                   business: bool = True) -> str:
    out = [f"{metrics.COUNT.render(value, where)} as {count}"] if count else []
    columns = iter(metrics.stat_columns(stem, business=business))
    for v in ([value, _business(value)] if business else [value]):
        out += [f"{s.render(v, where)} as {next(columns)}" for s in metrics.STATS]
    return _SEP.join(out)


def stat_columns(alias: str, stem: str, count: str | None = None, business: bool = True) -> str:
    out = [f"coalesce({alias}.{count}, 0) as {count}"] if count else []
    return _SEP.join(out + [f"{alias}.{c}" for c in metrics.stat_columns(stem, business=business)])


def metric_values(metric: str) -> str:
    """One occurrence of a catalogue time metric as ``metric_date, channel_id, agent_email, value_ms,
    value_business_ms`` (its day column, the agent it is credited to, its two duration columns)."""
    m = metrics.TIME_METRICS_BY_NAME[metric]
    return (f"'{m.name}' as metric, {m.day_column} as metric_date, channel_id, {m.credited_to} as agent_email, "
            f"{m.column} as value_ms, {m.business_column} as value_business_ms")


def metric_filter(metric: str) -> str:
    """The rows of the metric's mart that are occurrences of it (the catalogue's ``row_filter``)."""
    return f"({metrics.TIME_METRICS_BY_NAME[metric].row_filter})"


def metric_occurrences() -> str:
    """Every catalogue time metric's occurrences (``organization_id`` and :func:`metric_values`), one
    ``union all`` branch per metric, each read from its mart with its row filter and a ``key_filter`` on
    its day column. Written as macro calls: expanded at load time (:func:`expand_catalogue`)."""
    return "\n    union all\n    ".join(
        f"select organization_id, {{{{ metric_values('{m.name}') }}}}\n"  # noqa: S608 (identifiers from the catalogue)
        f"    from {{{{ ref('{m.mart}') }}}}\n"
        f"    where {{{{ metric_filter('{m.name}') }}}}\n"
        f"        and {{{{ key_filter('{m.mart}', 'organization_id', 'organization_id', '{m.day_column}') }}}}"
        for m in metrics.TIME_METRICS)


CATALOGUE_MACROS: dict[str, Callable[[], str]] = {"metric_occurrences": metric_occurrences}


def expand_catalogue(sql: str) -> str:
    """A model's SQL with its catalogue macros written out (they expand to further macro calls, which
    the DAG reads: refs, key sources)."""
    def expand(m: re.Match[str]) -> str:
        call = _parse(m.group(1), m.group(2))
        if call.name not in CATALOGUE_MACROS:
            return m.group(0)
        if call.args or call.kwargs:
            raise BuildError(f"the catalogue macro {call.name} takes no arguments")
        return CATALOGUE_MACROS[call.name]()

    return _CALL.sub(expand, sql)


def key_spine(keys: str, *relations: str) -> str:
    """Every key (``keys``: a column list) found in any of ``relations``, once."""
    return "\n    union ".join(f"select {keys} from {r}" for r in relations)  # noqa: S608 (identifiers from code)


def left_join_using(keys: str, *relations: str) -> str:
    """``left join <relation> using (<keys>)`` for each relation (``'cte as alias'``)."""
    return "\n    ".join(f"left join {r} using ({keys})" for r in relations)


PLAIN_MACROS: dict[str, Callable[..., str]] = {
    "key_spine": key_spine, "left_join_using": left_join_using, "quarter_hour": bucket_sql, "local_time": local_time, "utc_offset_join": utc_offset_join,
    "business_clock_join": business_clock_join, "business_clock": business_clock, "sla_status": sla_status,
    "duration_stats": duration_stats, "stat_columns": stat_columns, "metric_values": metric_values,
    "metric_filter": metric_filter,
}


# --- rendering ------------------------------------------------------------------------------------

def render(model: Model, models: Mapping[str, Model], *, scoped: bool = False, keyed: bool = False) -> str:
    """Resolve every macro of ``model``.

    ``scoped``: a conversation-scoped run, whose conversation-scoped refs read only ``_scope``;
    ``keyed``: a key-scoped run, whose ``key_filter``/``key_since`` read the keys in scope.
    """

    def expand(m: re.Match[str]) -> str:
        call = _parse(m.group(1), m.group(2))
        name, args = call.name, call.args
        if name == "ref":
            if scoped and models[args[0]].conversation_scoped:
                return f"(select * from {args[0]} where {IN_SCOPE})"  # noqa: S608 (identifiers from code)
            return args[0]
        if name == "source":
            return args[0]
        if name == "var":
            if args[0] not in VARS:
                raise BuildError(f"model {model.name} uses unknown var {args[0]!r}")
            return str(int(VARS[args[0]]))
        if name == "key_filter":
            return _key_filter(model.name, *args) if keyed else "true"
        if name == "key_since":
            return _key_since(model, args, call.kwargs.get("carry"), keyed=keyed)
        if name == "since_bound":
            if not any(ks.kind == "key_since" for ks in model.key_sources):
                raise BuildError(f"model {model.name}: since_bound needs a key_since in the same model")
            return _since_bound(model.name, *args) if keyed else "true"
        if name in PLAIN_MACROS:
            try:
                return PLAIN_MACROS[name](*args, **call.kwargs)
            except TypeError as exc:
                raise BuildError(f"model {model.name}: macro {name}: {exc}") from exc
        raise BuildError(f"model {model.name} uses unknown macro {name!r}")

    return _CALL.sub(expand, model.sql)


def _key_filter(model: str, source: str, org: str, ent: str, day: str) -> str:
    in_keys = (f"(({org}), ({ent}), ({day})) in "  # noqa: S608 (identifiers from code)
               f"(select organization_id, entity_id, metric_date from _keys_{model})")
    # a plain column bound on the earliest key day lets the scan skip old row groups (zone maps)
    col = _DAY_COLUMN.fullmatch(day.strip())
    if not col:
        return in_keys
    # typed, so that the comparison is pushed into the scan (an untyped variable is not)
    bound = f"getvariable('key_min_{model}')::{'timestamp' if col.group(2) else 'date'}"
    return f"({col.group(1)} >= {bound} and {in_keys})"


def _key_since(model: Model, args: tuple[str, ...], carry: str | None, *, keyed: bool) -> str:
    """The ``key_since`` relation ``(organization_id, entity_id, since_date, since_at[, carried])``.

    ``carry``: a column of the model itself; ``carried`` is its value in the entity's last row before
    ``since_date`` (the model's previous output, read before the recomputed rows are replaced), NULL
    when the entity has none and in a full build. A running total starts from it instead of summing
    the entity's whole history.
    """
    since_at = f"{since_at_sql('s.since_date')} as since_at"
    if not keyed:
        extra = ", null as carried" if carry else ""
        return (f"(select s.organization_id, s.entity_id, s.since_date, {since_at}{extra} "  # noqa: S608 (identifiers from code)
                f"from {_all_since(*args)} as s)")
    if not carry:
        return (f"(select s.organization_id, s.entity_id, s.since_date, {since_at} "  # noqa: S608 (identifiers from code)
                f"from _since_{model.name} as s)")
    if len(model.key) != 3:
        raise BuildError(f"model {model.name}: key_since(carry=...) needs the model's 3-column key")
    org, ent, day = model.key
    # the model's rows are one per key (a few per entity and day): this reads far less than the history
    return (f"(select s.organization_id, s.entity_id, s.since_date, {since_at}, "  # noqa: S608 (identifiers from code)
            f"arg_max(t.{carry}, t.{day}) as carried from _since_{model.name} as s "
            f"left join {model.name} as t on t.{org} = s.organization_id and t.{ent} = s.entity_id "
            f"and t.{day} < s.since_date group by s.organization_id, s.entity_id, s.since_date)")


def since_at_sql(since_date: str) -> str:
    """``since_at`` of a ``since_date``: an instant safely before that local day starts in any timezone
    (UTC offsets are < 1 day)."""
    return f"({since_date}::timestamp - interval 1 day)::timestamptz"


def since_min_variable(model: str) -> str:
    """The DuckDB variable holding the build's earliest ``since_at`` of ``model`` (set by the runner)."""
    return f"since_min_{model}"


def _since_bound(model: str, column: str) -> str:
    """``column >= `` the earliest ``since_at`` of the build, typed so that the scan skips row groups."""
    return f"({column} >= getvariable('{since_min_variable(model)}')::timestamptz)"


def _all_since(source: str, org: str, ent: str, day: str) -> str:
    return (f"(select distinct ({org}) as organization_id, ({ent}) as entity_id, "  # noqa: S608 (identifiers from code)
            f"'-infinity'::date as since_date from {source})")
