"""Security of what `switchboard serve` answers, over real HTTP: headers on every response, host names
that are not ours refused, an address sending bad signatures refused with 429; and the app's server
settings (XSRF and CORS protection) as `switchboard app` starts it."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from switchboard.cli.main import STREAMLIT_OPTIONS, streamlit_command
from switchboard.http.receiver import create_app
from switchboard.http.security import BadSignatureThrottle, allowed_hosts, host_matcher
from switchboard.services.channels import create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from tests.fakes.server import run_asgi

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(engine: Engine) -> Iterator[tuple[str, str]]:
    key = get_settings().secret_key_bytes()
    credentials = {"app_secret": "s", "access_token": "t", "phone_number_id": "100"}
    with UnitOfWork(engine) as uow:
        ch = create_channel(uow, Actor.system(create_organization(uow, "Sec")), key="wa", provider="whatsapp",
                            name="WA", secret_key=key, external_id="100", credentials=credentials)
        uow.commit()
    app = create_app(engine, key, hosts=["127.0.0.1", "hooks.example.com"],
                     throttle=BadSignatureThrottle(limit=3, window=60))
    with run_asgi(app) as base:
        yield base, f"{base}/webhooks/whatsapp/{ch.webhook_key}"


def test_every_answer_carries_the_security_headers(served: tuple[str, str]) -> None:
    base, hook = served
    answers = [httpx.get(f"{base}/health"), httpx.post(f"{base}/webhooks/whatsapp/nope", content=b"{}"),
               httpx.post(hook, content=b"{}"), httpx.get(f"{base}/no-such-page")]
    assert [r.status_code for r in answers] == [200, 404, 401, 404]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "strict-transport-security" not in r.headers  # plain HTTP: HSTS only behind HTTPS


def test_a_host_name_that_is_not_ours_is_refused(served: tuple[str, str]) -> None:
    base, _ = served
    assert httpx.get(f"{base}/health", headers={"Host": "hooks.example.com"}).status_code == 200
    refused = httpx.get(f"{base}/health", headers={"Host": "evil.example.net"})
    assert refused.status_code == 400
    assert refused.headers["x-content-type-options"] == "nosniff"


def test_a_delivery_for_a_host_name_that_is_not_ours_is_refused_and_not_stored(
        engine: Engine, served: tuple[str, str]) -> None:
    """Deliveries are answered by the receiver's fast path, outside Starlette's middleware: the host rule
    must hold there too (the fast path takes only hosts it plainly accepts and leaves the rest to it)."""
    _, hook = served
    for host in ("evil.example.net", "hooks.example.com.evil.net", "[::1]:80", "hooks.example.com:x"):
        refused = httpx.post(hook, content=b"{}", headers={"Host": host})
        assert refused.status_code == 400, host
        assert refused.headers["x-content-type-options"] == "nosniff"
    accepted = httpx.post(hook, content=b"{}", headers={"Host": "HOOKS.example.com:8443"})
    assert accepted.status_code == 401  # ours (any case, any port): on to the signature check
    assert "frame-ancestors 'none'" in accepted.headers["content-security-policy"]
    with engine.connect() as con:
        statuses = [r[0] for r in con.execute(text("select status from webhook_events order by id"))]
    assert statuses == ["REJECTED"]  # only the delivery that reached our host name


def test_host_matcher_follows_starlettes_rule() -> None:
    ok = host_matcher(["hooks.example.com", "*.tenants.example.org"])
    assert ok(b"hooks.example.com") and ok(b"hooks.example.com:443") and ok(b"a.tenants.example.org")
    assert not ok(b"tenants.example.org") and not ok(b"evil.net") and not ok(None) and not ok(b"[::1]")
    assert host_matcher(["*"])(b"anything")


def test_repeated_bad_signatures_from_one_address_get_429(served: tuple[str, str]) -> None:
    _, hook = served
    codes = [httpx.post(hook, content=b'{"object":"x"}', headers={"X-Hub-Signature-256": "sha256=00"}).status_code
             for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    last = httpx.post(hook, content=b"{}")
    assert last.status_code == 429 and 1 <= int(last.headers["retry-after"]) <= 60


def test_the_throttle_forgets_after_its_window() -> None:
    now = [0.0]
    throttle = BadSignatureThrottle(limit=2, window=10, clock=lambda: now[0])
    throttle.failed("a")
    now[0] = 4
    throttle.failed("a")
    assert throttle.retry_after("a") == 6 and throttle.retry_after("b") == 0
    now[0] = 10.5  # the first failure left the window
    assert throttle.retry_after("a") == 0


def test_allowed_hosts_default_to_the_public_url_and_localhost() -> None:
    assert allowed_hosts(None, "https://hooks.example.com/base") == ["127.0.0.1", "::1", "hooks.example.com",
                                                                     "localhost"]
    assert allowed_hosts(" a.example, b.example ", "http://x") == ["a.example", "b.example"]


def test_the_app_runs_with_xsrf_and_cors_protection() -> None:
    cmd = streamlit_command(8501, "127.0.0.1")
    flags = dict(zip(cmd[7::2], cmd[8::2], strict=True))
    assert flags["--server.enableXsrfProtection"] == "true"
    assert flags["--server.enableCORS"] == "true"
    assert flags["--client.showErrorDetails"] == "type"
    # `streamlit run` by hand in the checkout reads the same settings from .streamlit/config.toml
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    for name, value in STREAMLIT_OPTIONS.items():
        section, option = name.split(".")
        assert str(config[section][option]).lower() == value, name


def test_health_names_no_error_of_any_organization(engine: Engine, served: tuple[str, str]) -> None:
    from switchboard.services import runs

    with UnitOfWork(engine) as uow:
        run = runs.start_run(uow, "process-webhooks")
        runs.finish_run(uow, run, ok=False, error="channel acme-wa: customer +4915112345678 refused")
        uow.commit()
    base, _ = served
    health = httpx.get(f"{base}/health").json()
    assert health["flows"]["process-webhooks"]["status"] == "failed"
    assert "4915112345678" not in str(health) and "acme" not in str(health)
