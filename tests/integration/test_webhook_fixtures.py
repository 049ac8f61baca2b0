"""Every real WhatsApp payload (pywa fixtures) through receiver → process flow → database."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, select, update

from pipelines.channels import ConnectorCache
from pipelines.processing import process_webhooks_once
from pipelines.receiver import create_app
from switchboard.db.schema import Message, WebhookEvent
from switchboard.services.channels import create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork
from tests.fakes.server import run_asgi

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "whatsapp"
_BUNDLED = Path(__file__).resolve().parents[1] / "unit" / "connectors" / "fixtures" / "whatsapp"
FIXTURES = _SHARED if _SHARED.exists() else _BUNDLED  # the bundled copy keeps the checkout self-contained
SECRET = "fixture-app-secret"


def _cases() -> list[tuple[str, str, bytes]]:
    out = []
    for f in sorted(FIXTURES.glob("*.json")):
        for name, body in json.loads(f.read_text()).items():
            out.append((f.stem, name, json.dumps(body).encode()))
    return out


def test_every_fixture_is_accepted_and_handled(engine: Engine) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Fixtures")
        ch = create_channel(uow, org, key="wa", provider="whatsapp", name="WA", secret_key=key,
                            external_id="1122334455667",
                            credentials={"app_secret": SECRET, "access_token": "t", "verify_token": "v",
                                         "phone_number_id": "1122334455667"})
    cases = _cases()
    assert len(cases) > 30
    with run_asgi(create_app(engine, key)) as base:
        for file, name, body in cases:
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            r = httpx.post(f"{base}/webhooks/whatsapp/{ch.webhook_key}", content=body,
                           headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"})
            assert r.status_code == 200, (file, name, r.text)
    connectors = ConnectorCache(engine, key)
    try:
        while process_webhooks_once(engine, connectors).claimed:
            pass
        # a second pass over the same deliveries (a platform retry) adds nothing
        with UnitOfWork(engine) as uow:
            before = uow.session.execute(select(func.count()).select_from(Message)).scalar_one()
            uow.session.execute(update(WebhookEvent).values(status="RECEIVED", attempts=0, processed_at=None))
            uow.commit()
        while process_webhooks_once(engine, connectors).claimed:
            pass
    finally:
        connectors.close()
    with UnitOfWork(engine) as uow:
        rows = uow.session.execute(select(WebhookEvent.status, WebhookEvent.reason).order_by(WebhookEvent.id)).all()
        after = uow.session.execute(select(func.count()).select_from(Message)).scalar_one()
    assert len(rows) == len(cases)
    by_case = {f"{c[0]}/{c[1]}": row for c, row in zip(cases, rows, strict=True)}
    bad = {k: row for k, row in by_case.items() if row.status not in ("PROCESSED", "IGNORED")}
    assert not bad, bad
    for k, row in by_case.items():
        if row.status == "IGNORED":
            assert row.reason, f"{k} ignored without a reason"
        if k.startswith("message/"):
            assert row.status == "PROCESSED", k
    for k in ("system/", "account_update/", "user_marketing_preferences/"):
        assert any(key.startswith(k) and row.status == "IGNORED" for key, row in by_case.items()), k
    # fixtures reuse provider message ids across cases: ingest is idempotent by (channel, id)
    ids = {m["id"] for f, _, body in cases if f == "message"
           for e in json.loads(body)["entry"] for c in e["changes"] for m in c["value"].get("messages", [])}
    assert after == before and after >= len(ids)
