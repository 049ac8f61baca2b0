"""`switchboard api-key create|list|revoke` as an operator runs them (subprocesses), and the printed key
working against the HTTP API until it is revoked."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from sqlalchemy import create_engine

from switchboard.http.receiver import create_app
from switchboard.settings import get_settings
from tests.fakes.server import run_asgi
from tests.integration.test_cli import run


def test_create_use_list_and_revoke_a_key(db_url: str, tmp_path: Path) -> None:
    r = run(db_url, tmp_path, "channel", "add", "--key", "tg-main", "--provider", "telegram")
    assert r.returncode == 0, r.stderr
    r = run(db_url, tmp_path, "api-key", "create", "--name", "shop", "--scope", "conversations:read",
            "--scope", "messages:read", "--channel", "tg-main", "--expires-in-days", "30")
    assert r.returncode == 0, r.stderr
    found = re.search(r"^key: (sb_live_\S{43})$", r.stdout, re.M)
    assert found, r.stdout
    key = found.group(1)
    assert "channels: tg-main" in r.stdout

    for bad, why in ((["--scope", "messages:delete"], "unknown scope"), (["--scope", "messages:read", "--channel",
                                                                           "nope"], "no channel 'nope'"),
                     (["--scope", "messages:read", "--expires-in-days", "0"], "1 to 3650 days")):
        r = run(db_url, tmp_path, "api-key", "create", "--name", "bad", *bad)
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr, r.stderr

    engine = create_engine(db_url)
    try:
        with run_asgi(create_app(engine, get_settings().secret_key_bytes())) as base:
            auth = {"Authorization": f"Bearer {key}"}
            assert httpx.get(f"{base}/api/v1/conversations", headers=auth).status_code == 200
            r = run(db_url, tmp_path, "api-key", "list")
            assert r.returncode == 0 and key[:14] in r.stdout and "active" in r.stdout, r.stderr
            assert key not in r.stdout  # only the prefix is ever shown again
            r = run(db_url, tmp_path, "api-key", "revoke", key[:14])
            assert r.returncode == 0 and "revoked" in r.stdout, r.stderr
            assert httpx.get(f"{base}/api/v1/conversations", headers=auth).status_code == 401
            assert "revoked" in run(db_url, tmp_path, "api-key", "list").stdout
    finally:
        engine.dispose()
