"""The build runs below the caller's CPU priority, and so do the threads it starts (DuckDB's workers)."""

from __future__ import annotations

import os
import threading

import duckdb
import pytest

from warehouse.build import at_priority
from warehouse.errors import BuildError


def _nice(tid: int | None = None) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid if tid is not None else threading.get_native_id())


def _tasks() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def test_the_build_and_the_threads_it_starts_run_at_the_lower_priority() -> None:
    caller = _nice()
    seen: dict[str, object] = {}

    def build() -> int:
        seen["build"] = _nice()
        before = _tasks()
        con = duckdb.connect(config={"threads": 2})  # a new instance starts its worker threads here
        try:
            con.execute("select sum(i) from range(1000000) t(i)").fetchall()
            seen["duckdb"] = {_nice(tid) for tid in _tasks() - before}
        finally:
            con.close()
        return 42

    assert at_priority(7, build) == 42
    assert seen["build"] == max(7, caller)
    assert seen["duckdb"] == {max(7, caller)}  # at least one DuckDB worker thread, all of them lowered
    assert _nice() == caller  # the caller keeps its priority


def test_errors_reach_the_caller_and_bad_values_are_refused() -> None:
    def fails() -> None:
        raise BuildError("a model failed")

    with pytest.raises(BuildError, match="a model failed"):
        at_priority(5, fails)
    with pytest.raises(BuildError, match="between 0 and 19"):
        at_priority(20, lambda: None)
    assert at_priority(0, threading.get_native_id) == threading.get_native_id()  # 0: the caller's thread
