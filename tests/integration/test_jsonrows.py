"""recordset(): the JSON rows of a batched statement read by name, with json_to_recordset's meaning."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from switchboard.jsonrows import recordset, to_json

FIELDS = "n bigint, s text, b boolean, at timestamptz, j jsonb"


def _read(engine: Engine, rows: list[dict[str, object]], how: str) -> list[tuple[object, ...]]:
    source = recordset(FIELDS) if how == "recordset" else f"json_to_recordset(cast(:rows as json)) as r({FIELDS})"
    with engine.connect() as con:
        return [tuple(r) for r in con.execute(text(f"select r.n, r.s, r.b, r.at, r.j from {source}"),  # noqa: S608
                                               {"rows": to_json(rows)})]


def test_reads_every_field_by_name_as_json_to_recordset_does(engine: Engine) -> None:
    at = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)
    rows: list[dict[str, object]] = [
        {"j": {"a": [1, "x"]}, "n": 2**40, "s": "quote ' \" \\ é \n", "b": True, "at": at},  # any field order
        {"n": None, "s": None, "b": False, "at": None, "j": None},  # JSON null: SQL NULL
        {"n": 3},  # a missing field: NULL
        {"n": 4, "s": "", "j": "just a string"},  # a JSON string stays a jsonb string
        {"n": 5, "j": [1, 2], "s": "12"},
    ]
    ours = _read(engine, rows, "recordset")
    assert ours == _read(engine, rows, "json_to_recordset")
    assert ours[0] == (2**40, "quote ' \" \\ é \n", True, at, {"a": [1, "x"]})
    assert ours[1] == (None, None, False, None, None)
    assert ours[2] == (3, None, None, None, None)
    assert ours[3][4] == "just a string"


def test_refuses_what_is_not_a_field_name_and_type() -> None:
    for bad in ("n bigint; drop table x", "n' text", "n text) --"):
        with pytest.raises(ValueError):
            recordset(bad)
