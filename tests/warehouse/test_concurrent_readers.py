"""Real reader processes keep reading the warehouse while builds publish: no read fails, and every
read sees one complete build (its build state and its rows agree), never a half build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from tests.warehouse.seed import T
from tests.warehouse.test_build import scenario
from warehouse import queries
from warehouse.build import build
from warehouse.state import read_state

READERS = 10

# Each read: one connection through the readers' entry point, the build state and the rows of one mart
# read together. A line per read on stdout; a failed read ends the process with the error.
READER = """
import json, os, sys, time
from pathlib import Path
from warehouse import queries
from warehouse.state import read_state

path, stop, parent = Path(sys.argv[1]), Path(sys.argv[2]), os.getppid()
while not stop.exists() and os.getppid() == parent:  # the test ends it, or it ends with the test
    with queries.connect(path) as con:
        built_at = read_state(con)["built_at"]
        row = con.execute("select count(*), max(started_at) from conversation_cycles").fetchone()
    print(json.dumps([built_at, row[0], str(row[1])]), flush=True)
    time.sleep(0.05)
"""


def _observed(path: Path) -> tuple[str, int, str]:
    with queries.connect(path) as con:
        built_at = read_state(con)["built_at"]
        row = con.execute("select count(*), max(started_at) from conversation_cycles").fetchone()
    assert row is not None
    return built_at, int(row[0]), str(row[1])


def _lines(out: Path) -> list[tuple[str, int, str]]:
    rows = [json.loads(line) for line in out.read_text().split("\n")[:-1]]  # complete lines only
    return [(str(a), int(n), str(b)) for a, n, b in rows]


def _wait(condition: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {condition}"
        time.sleep(0.1)


def test_reader_processes_never_fail_and_never_see_a_half_build(engine: Engine, db_url: str,
                                                                 tmp_path: Path) -> None:
    s = scenario(engine, upto=1)
    path = tmp_path / "w"
    build(db_url, path, full=True, now=T("2026-03-02 12:00"))
    complete = {_observed(path)}
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    outs = [tmp_path / f"reader-{i}.out" for i in range(READERS)]
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(path), str(stop)], env=env,
                                stdout=out.open("w"), stderr=subprocess.PIPE, text=True) for out in outs]
    try:
        _wait("every reader has read the first build", lambda: all(_lines(o) for o in outs))
        channel = s.state[sorted(s.state)[0]]["channel_id"]
        for i, now in enumerate(("2026-03-02 13:00", "2026-03-02 14:00", "2026-03-02 15:00")):
            s.inbound(s.conversation(channel, f"late-{i}"), T(now) - timedelta(minutes=20))
            build(db_url, path, now=T(now))  # incremental: swapped in while the readers read
            complete.add(_observed(path))
        build(db_url, path, full=True, now=T("2026-03-02 16:00"))
        last = _observed(path)
        complete.add(last)
        _wait("every reader has read the last build", lambda: all(last in _lines(o) for o in outs))
    finally:
        stop.touch()
        errors = [r.communicate(timeout=60)[1] for r in readers]
    assert [r.returncode for r in readers] == [0] * READERS, errors
    seen = {obs for o in outs for obs in _lines(o)}
    assert seen <= complete, f"a reader saw a state no build published: {seen - complete}"
    assert len({n for _, n, _ in complete}) == 4  # each build added a conversation cycle
    assert len(seen) >= 2  # the readers saw builds change under them
