"""Warehouse maintenance: old snapshots are expired and the files only they read are deleted, while
the published build stays readable and unchanged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from tests.warehouse.seed import T
from tests.warehouse.test_build import scenario
from warehouse import queries
from warehouse.build import build, maintain

CYCLES = "select conversation_id, cycle_number, started_at, completed_at from conversation_cycles order by all"


def _files(path: Path) -> set[Path]:
    return set((path / "data").rglob("*.parquet"))


def test_maintenance_expires_snapshots_and_deletes_unread_files(engine: Engine, db_url: str, tmp_path: Path) -> None:
    s = scenario(engine, upto=1)
    path = tmp_path / "w"
    assert maintain(db_url, path, keep=timedelta(0)) == {}  # nothing built yet: nothing to do
    build(db_url, path, full=True, now=T("2026-03-02 12:00"))
    first = _files(path)
    channel = s.state[sorted(s.state)[0]]["channel_id"]
    s.inbound(s.conversation(channel, "late"), T("2026-03-02 12:30"))
    build(db_url, path, now=T("2026-03-02 13:00"))
    build(db_url, path, full=True, now=T("2026-03-02 14:00"))  # replaces every table: the first files are unread
    before = queries.query(path, CYCLES)
    snapshot = queries.snapshot_id(path)
    with queries.connect(path) as con:
        assert len(con.execute("from lake.snapshots()").fetchall()) > 2

    timings = maintain(db_url, path, keep=timedelta(0))
    assert set(timings) == {"merge", "expire", "cleanup", "orphans"}
    with queries.connect(path) as con:
        assert con.execute("select count(*) from lake.snapshots()").fetchone() == (1,)
    assert not first & _files(path), "files only old snapshots read were not deleted"
    assert queries.query(path, CYCLES).equals(before)
    assert queries.snapshot_id(path) >= snapshot
