"""The model DAG: the SQL models of ``warehouse/models`` with their ``.yml``, in dependency order.

A model is ``<layer>/<name>.sql`` (a ``select`` with ``{{ … }}`` macros, see :mod:`warehouse.render`)
and ``<layer>/<name>.yml`` (grain, columns, key tests, ``scope``). A view that key-scoped models read
through ``key_filter``/``key_since`` also has ``<name>.delta.sql``: the rows of the view that changed
in this build (a table's changed rows are found by the runner itself).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from warehouse import extract
from warehouse.errors import BuildError
from warehouse.render import VARS, MacroCall, expand_catalogue, macro_calls, render
from warehouse.state import FORMAT_VERSION

MODELS_DIR = Path(__file__).with_name("models")
LAYERS = ("staging", "intermediate", "marts")
DELTA_SUFFIX = ".delta.sql"

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster than the pure-Python one


@dataclass(frozen=True)
class KeySource:
    """One ``{{ key_filter(...) }}`` / ``{{ key_since(...) }}`` of a key-scoped model.

    ``key_filter('int_messages', 'organization_id', 'author_user_id', 'sent_local_date')`` keeps the
    rows of a CTE whose (organization, entity, day) is one of the model's keys in scope; the keys in
    scope are the same three expressions evaluated over the rows of ``int_messages`` that changed in
    this build (old and new versions). In a full build it is ``true``.

    ``key_since(source, org, entity, day)`` is a relation ``(organization_id, entity_id, since_date)``:
    per entity, the earliest day of its changed source rows (a full build: every entity of the source
    since ``-infinity``). For running totals (concurrency, presence spans): the model recomputes every
    day of the entity from ``since_date`` on, starting from the level before it — with ``carry='col'``,
    the value of ``col`` in the model's own last row before ``since_date`` (``carried``), so that the
    recompute reads the recomputed days only, not the entity's history.
    """

    kind: str  # key_filter | key_since
    source: str
    org: str
    entity: str
    day: str


@dataclass(frozen=True)
class Model:
    name: str
    layer: str
    sql: str
    config: dict[str, Any]
    delta_sql: str | None = None  # views only: the changed rows of this build (``<name>.delta.sql``)

    @property
    def calls(self) -> list[MacroCall]:
        return macro_calls(self.sql)

    @property
    def refs(self) -> list[str]:
        return [c.args[0] for c in self.calls if c.name in ("ref", "key_filter", "key_since")]

    @property
    def materialized(self) -> str:
        return str(self.config.get("materialized", "view" if self.layer == "staging" else "table"))

    @property
    def published(self) -> bool:
        """Readers see it: every mart, and the models whose ``.yml`` says ``publish: true``."""
        return self.layer == "marts" or bool(self.config.get("publish"))

    @property
    def conversation_scoped(self) -> bool:
        return self.config.get("scope") == "conversation"

    @property
    def key_scoped(self) -> bool:
        return self.config.get("scope") == "key"

    @property
    def key(self) -> list[str]:
        """The delete key of a key-scoped model: (organization column, entity column, date column)."""
        return [str(k) for k in self.config.get("key", [])]

    @property
    def key_sources(self) -> list[KeySource]:
        return [KeySource(c.name, *c.args) for c in self.calls if c.name in ("key_filter", "key_since")]


def load_models(models_dir: Path = MODELS_DIR) -> list[Model]:
    """All models in dependency order (each after the models it refs)."""
    found: dict[str, Model] = {}
    for layer in LAYERS:
        for sql_path in sorted((models_dir / layer).glob("*.sql")):
            if sql_path.name.endswith(DELTA_SUFFIX):
                continue
            yml = sql_path.with_suffix(".yml")
            config = yaml.load(yml.read_text(), Loader=_YAML_LOADER) if yml.exists() else {}
            delta = sql_path.with_name(sql_path.stem + DELTA_SUFFIX)
            found[sql_path.stem] = Model(sql_path.stem, layer, expand_catalogue(sql_path.read_text()), config or {},
                                         delta.read_text() if delta.exists() else None)
    ordered: list[Model] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise BuildError(f"models form a cycle: {' → '.join((*trail, name))}")
        if name not in found:
            raise BuildError(f"model {trail[-1] if trail else '?'} refs unknown model {name!r}")
        state[name] = 1
        for dep in found[name].refs:
            visit(dep, (*trail, name))
        state[name] = 2
        ordered.append(found[name])

    for name in found:
        visit(name, ())
    return ordered


def models_fingerprint(models: list[Model]) -> str:
    """Changes with any model as rendered (so with the macros and the catalogue), config or extract."""
    by_name = {m.name: m for m in models}
    h = hashlib.sha256(FORMAT_VERSION.encode())
    for m in models:
        h.update(m.name.encode() + render(m, by_name).encode() + (m.delta_sql or "").encode())
        h.update(json.dumps(m.config, sort_keys=True, default=str).encode())
    for t in extract.RAW_TABLES:
        h.update(t.select.encode())
    h.update(json.dumps(VARS, sort_keys=True).encode())
    return h.hexdigest()
