"""The embedded PostgreSQL is shared by a deployment's processes and stops after the last one exits,
even when some of them were killed (and never unregistered)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

JOIN = """
import sys, time
from pathlib import Path
from switchboard.db.engine import embedded_server
s = embedded_server(Path(sys.argv[1]))
print(s.get_uri(), flush=True)
time.sleep(float(sys.argv[2]))
"""


def _postmaster_pid(data: Path) -> int | None:
    pidfile = data / "postmaster.pid"
    if not pidfile.exists():
        return None
    return int(pidfile.read_text().split()[0])


def test_server_stops_after_last_user_even_if_one_was_killed(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    killed = subprocess.Popen([sys.executable, "-c", JOIN, str(data), "60"], stdout=subprocess.PIPE, text=True)
    uri = killed.stdout.readline().strip() if killed.stdout else ""
    assert uri.startswith("postgresql://")
    pid = _postmaster_pid(data)
    assert pid and psutil.pid_exists(pid)
    os.kill(killed.pid, signal.SIGKILL)  # dies without unregistering
    killed.wait()
    last = subprocess.run([sys.executable, "-c", JOIN, str(data), "0.1"], capture_output=True, text=True, timeout=60)
    assert last.returncode == 0, last.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        time.sleep(0.2)
    assert not psutil.pid_exists(pid), "the embedded server outlived every process that used it"


def test_new_embedded_server_is_tuned(pg_root: str) -> None:
    from sqlalchemy import create_engine, text

    from switchboard.db.engine import embedded_tuning

    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL points at an external server: its operator tunes it")
    eng = create_engine(pg_root)
    with eng.connect() as con:
        mb = con.execute(text("select setting::bigint * 8 / 1024 from pg_settings where name = 'shared_buffers'"))
        assert f"{mb.scalar()}MB" == embedded_tuning()["shared_buffers"]
        assert con.execute(text("show max_connections")).scalar() == "200"
    eng.dispose()
