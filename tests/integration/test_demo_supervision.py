"""The demo launcher's supervision (`switchboard.cli.demo.Supervisor`) with real child processes.

A child that exits is reported (name, exit code, log file) and every other child is stopped:
SIGTERM to its process group first, SIGKILL after the grace period for whatever is still there
(a child that ignores SIGTERM, a grandchild that outlived its parent), and every child is reaped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from switchboard.cli.demo import Child, Supervisor
from switchboard.errors import SwitchboardError

# argv: ready-file term-file. Installs its SIGTERM handler, then says it is ready.
POLITE = """
import pathlib, signal, sys, time
ready, term = map(pathlib.Path, sys.argv[1:3])
def on_term(signum, frame):
    term.write_text("SIGTERM")
    time.sleep(0.3)  # a short, clean shutdown well inside the grace period
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
ready.write_text("ready")
while True:
    time.sleep(0.05)
"""

STUBBORN = """
import pathlib, signal, sys, time
ready, term = map(pathlib.Path, sys.argv[1:3])
signal.signal(signal.SIGTERM, lambda signum, frame: term.write_text("SIGTERM, ignored"))
ready.write_text("ready")
while True:
    time.sleep(0.05)
"""

# A parent that exits on SIGTERM, leaving a grandchild (same process group) that ignores it.
PARENT_OF_STUBBORN = """
import pathlib, subprocess, sys, time
ready, term, grandchild = sys.argv[1:4]
kid = subprocess.Popen([sys.executable, "-c", sys.argv[4], grandchild + ".ready", term])
while not pathlib.Path(grandchild + ".ready").exists():
    time.sleep(0.02)
pathlib.Path(grandchild).write_text(str(kid.pid))
pathlib.Path(ready).write_text("ready")
while True:
    time.sleep(0.05)
"""

QUITTER = "import sys; print('giving up', flush=True); sys.exit(3)"


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """Not running any more within ``timeout`` (SIGKILL is delivered asynchronously); a zombie
    nobody has reaped yet (not our child: its parent is gone) counts as gone, it runs nothing."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _spawn_ready(sup: Supervisor, tmp: Path, name: str, script: str, *extra: str) -> Child:
    child = sup.spawn(name, [sys.executable, "-c", script, str(tmp / f"{name}.ready"),
                             str(tmp / f"{name}.term"), *extra], dict(os.environ))
    _wait_for(tmp / f"{name}.ready")
    return child


def test_a_child_that_exits_is_reported_and_the_rest_are_stopped(tmp_path: Path) -> None:
    grace = 2.0
    sup = Supervisor(tmp_path, grace=grace)
    try:
        polite = _spawn_ready(sup, tmp_path, "polite", POLITE)
        stubborn = _spawn_ready(sup, tmp_path, "stubborn", STUBBORN)
        family = _spawn_ready(sup, tmp_path, "family", PARENT_OF_STUBBORN,
                              str(tmp_path / "grandchild"), STUBBORN)
        grandchild = int((tmp_path / "grandchild").read_text())
        sup.spawn("quitter", [sys.executable, "-c", QUITTER], dict(os.environ))

        with pytest.raises(SwitchboardError) as reported:
            sup.watch(interval=0.05)
        assert str(reported.value) == f"quitter exited with code 3; see {tmp_path / 'quitter.log'}"
        assert (tmp_path / "quitter.log").read_text() == "giving up\n"
        assert polite.proc.poll() is None and stubborn.proc.poll() is None  # watch stops nothing itself

        started = time.monotonic()
        sup.stop()
        took = time.monotonic() - started
    finally:
        sup.stop()  # never leave processes behind, whatever failed above

    # SIGTERM first: every process got it, and the one that shuts down within the grace period was not killed
    assert (tmp_path / "polite.term").read_text() == "SIGTERM"
    assert polite.proc.returncode == 0
    assert (tmp_path / "stubborn.term").read_text() == "SIGTERM, ignored"
    assert (tmp_path / "family.term").read_text() == "SIGTERM, ignored"  # the grandchild, via the group
    assert family.proc.returncode == -signal.SIGTERM
    # then SIGKILL, only once the grace period is over, for whatever is still running
    assert stubborn.proc.returncode == -signal.SIGKILL
    assert took >= grace
    assert _gone(grandchild), "a grandchild that ignored SIGTERM outlived the demo"
    assert all(c.proc.returncode is not None for c in sup.children)  # every child reaped


def test_children_that_stop_on_sigterm_are_not_waited_for_until_the_grace_period(tmp_path: Path) -> None:
    grace = 120.0
    sup = Supervisor(tmp_path, grace=grace)
    try:
        children = [_spawn_ready(sup, tmp_path, f"polite{i}", POLITE) for i in range(3)]
        started = time.monotonic()
        sup.stop()
        took = time.monotonic() - started
    finally:
        sup.stop()
    assert [c.proc.returncode for c in children] == [0, 0, 0]
    assert took < grace / 2, took  # it returned when the children were done, not after the grace period


def test_stop_without_children_and_twice_is_harmless(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path, grace=0.5)
    sup.stop()
    child = sup.spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], dict(os.environ))
    sup.stop()
    sup.stop()
    assert child.proc.returncode == -signal.SIGTERM


# The demo's own process, reduced to its supervision: Ctrl-C (SIGINT) and `kill` (SIGTERM) raise
# KeyboardInterrupt, as run_demo's handlers do; the first one stops the children.
LAUNCHER = """
import os, pathlib, signal, sys, time
from switchboard.cli.demo import Supervisor

def interrupt(signum, frame):
    raise KeyboardInterrupt

signal.signal(signal.SIGINT, interrupt)
signal.signal(signal.SIGTERM, interrupt)
tmp = pathlib.Path(sys.argv[1])
sup = Supervisor(tmp, grace=600)
child = sup.spawn("stubborn", [sys.executable, "-c", sys.argv[2], str(tmp / "stubborn.ready"),
                               str(tmp / "stubborn.term")], dict(os.environ))
while not (tmp / "stubborn.ready").exists():
    time.sleep(0.02)
try:  # the pid is printed inside: the test's Ctrl-C may arrive right after it, before any later line
    print(child.proc.pid, flush=True)
    sup.watch(interval=0.05)
except KeyboardInterrupt:
    print("stopping", flush=True)
finally:
    sup.stop()
    print("stopped", child.proc.returncode, flush=True)
"""


def test_a_second_interrupt_during_the_stop_kills_at_once_instead_of_abandoning_the_children(
        tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path), STUBBORN], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child_pid = 0
    try:
        assert launcher.stdout is not None
        child_pid = int(launcher.stdout.readline())
        launcher.send_signal(signal.SIGINT)  # Ctrl-C: SIGTERM to the children, a grace period of 600 s
        _wait_for(tmp_path / "stubborn.term")
        launcher.send_signal(signal.SIGINT)  # Ctrl-C again: no more waiting
        out, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        if child_pid and not _gone(child_pid, timeout=0):
            os.kill(child_pid, signal.SIGKILL)
    assert (launcher.returncode, out, err) == (0, f"stopping\nstopped {-signal.SIGKILL}\n", "")
    assert _gone(child_pid), "the child outlived the demo launcher"
