"""The `switchboard` CLI against a real database, as an operator runs it (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.db.migrate import head_revision


def run(db_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=db_url, SWITCHBOARD_HOME=str(tmp_path / "home"),
               PUBLIC_BASE_URL="https://hooks.example.test")
    return subprocess.run([sys.executable, "-m", "switchboard.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.integration
def test_operator_session(db_url: str, tmp_path: Path) -> None:
    r = run(db_url, tmp_path, "db", "upgrade")
    assert r.returncode == 0, r.stderr
    assert f"revision {head_revision()}" in r.stdout
    assert run(db_url, tmp_path, "db", "upgrade").returncode == 0  # idempotent

    r = run(db_url, tmp_path, "user", "create", "--email", "Ops@Example.test", "--name", "Ops", "--role", "admin")
    assert r.returncode == 0, r.stderr
    assert "TOTP secret (shown once)" in r.stdout and "otpauth://totp/" in r.stdout
    assert "password (shown once)" in r.stdout  # generated because none was given

    r = run(db_url, tmp_path, "user", "create", "--email", "ops@example.test", "--name", "Ops", "--role", "admin")
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr

    r = run(db_url, tmp_path, "channel", "add", "--key", "wa-main", "--provider", "whatsapp",
            "--external-id", "123", "--credential", "app_secret=s3cret", "--credential", "access_token=t")
    assert r.returncode == 0, r.stderr
    assert "https://hooks.example.test/webhooks/whatsapp/" in r.stdout

    for limit in ("0", "-2", "nan", "fast"):  # a limit of 0 used to hang every channel's sends (issue 17)
        r = run(db_url, tmp_path, "channel", "add", "--key", "wa-zero", "--provider", "whatsapp",
                "--rate-limit", limit)
        assert r.returncode == 2 and "--rate-limit" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run(db_url, tmp_path, "channel", "add", "--key", "wa-slow", "--provider", "whatsapp", "--external-id", "124",
            "--credential", "app_secret=s", "--credential", "access_token=t", "--rate-limit", "0.5")
    assert r.returncode == 0, r.stderr

    r = run(db_url, tmp_path, "channel", "add", "--key", "Bad Key!", "--provider", "whatsapp")
    assert r.returncode == 2 and "channel key" in r.stderr and "Traceback" not in r.stderr

    r = run(db_url, tmp_path, "channel", "list")
    assert r.returncode == 0 and "wa-main" in r.stdout and "/webhooks/whatsapp/" in r.stdout
    assert "s3cret" not in r.stdout

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "timeline.jsonl"
    r = run(db_url, tmp_path, "import-events", str(example))
    assert r.returncode == 0, r.stderr
    assert "events replayed" in r.stdout
    r = run(db_url, tmp_path, "import-events", str(example))
    assert r.returncode == 0 and "already imported" in r.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "organization", "name": "X"}\n{"type": "inbound", "at": "yesterday"}\n')
    r = run(db_url, tmp_path, "import-events", str(bad))
    assert r.returncode == 2 and "line 2" in r.stderr and "Traceback" not in r.stderr
    r = run(db_url, tmp_path, "import-events", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "no such file" in r.stderr

    r = run(db_url, tmp_path, "warehouse", "build", "--full")
    assert r.returncode == 0, r.stderr
    assert "full build" in r.stdout and "extracted" in r.stdout

    code = run(db_url, tmp_path, "totp-code", "ops@example.test")
    assert code.returncode == 0 and code.stdout.strip().isdigit() and len(code.stdout.strip()) == 6


def test_bad_settings_are_reported_without_traceback(tmp_path: Path) -> None:
    env = dict(os.environ, RECEIVER_PORT="99999", SWITCHBOARD_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "switchboard.cli.main", "channel", "list"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "RECEIVER_PORT" in r.stderr and "Traceback" not in r.stderr


def test_warehouse_build_with_postgres_unreachable_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "warehouse.duckdb").write_bytes(b"not a warehouse")  # an unreadable published file, too
    r = run("postgresql://nobody:secret@127.0.0.1:1/switchboard", tmp_path, "warehouse", "build")
    assert r.returncode == 2, r.stderr
    assert "cannot read PostgreSQL" in r.stderr and "Traceback" not in r.stderr
    assert (home / "warehouse.duckdb").read_bytes() == b"not a warehouse"  # left as it was
    assert not list(home.glob(".warehouse.duckdb.building-*"))


def test_database_unreachable_or_not_migrated_is_one_readable_line(pg_root: str, tmp_path: Path) -> None:
    for args in (["channel", "list"], ["db", "upgrade"]):
        r = run("postgresql://nobody:secret@127.0.0.1:1/switchboard", tmp_path, *args)
        assert r.returncode == 2 and "cannot reach PostgreSQL" in r.stderr and "DATABASE_URL" in r.stderr
        assert "Traceback" not in r.stderr
    r = run(pg_root, tmp_path, "channel", "list")  # the maintenance database: no Switchboard tables
    assert r.returncode == 2 and "switchboard db upgrade" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.integration
def test_sync_templates_on_demand(db_url: str, tmp_path: Path) -> None:
    from tests.fakes.graph import FakeGraph
    from tests.fakes.server import run_asgi

    graph = FakeGraph(token="t", account_id="waba-9")
    graph.templates = [{"name": "hello", "language": "en_US", "status": "APPROVED",
                        "components": [{"type": "BODY", "text": "Hi {{1}}"}]}]
    with run_asgi(graph.app) as base:
        assert run(db_url, tmp_path, "db", "upgrade").returncode == 0
        r = run(db_url, tmp_path, "channel", "add", "--key", "wa-t", "--provider", "whatsapp", "--external-id", "9",
                "--credential", "app_secret=s", "--credential", "access_token=t", "--credential", "waba_id=waba-9",
                "--credential", f"api_base_url={base}")
        assert r.returncode == 0, r.stderr
        r = run(db_url, tmp_path, "channel", "sync-templates", "wa-t")
        assert r.returncode == 0, r.stderr
        assert "templates of wa-t: 1 new, 0 updated, 0 removed" in r.stdout
        r = run(db_url, tmp_path, "channel", "sync-templates", "nope")
        assert r.returncode == 2 and "no channel 'nope'" in r.stderr and "Traceback" not in r.stderr
