"""Every real WhatsApp payload (pywa fixtures) through receiver → process flow → database."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, select, update

from switchboard.db.schema import Message, WebhookEvent
from switchboard.http.receiver import create_app
from switchboard.services import webhooks
from switchboard.services.channels import create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import UNMATCHED_STATUS_ATTEMPTS, process_webhooks_once
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


def _numbers(cases: list[tuple[str, str, bytes]]) -> set[str]:
    """Every business phone number id the fixtures' changes name (value.metadata.phone_number_id)."""
    return {str(c["value"]["metadata"]["phone_number_id"]) for _, _, body in cases
            for e in json.loads(body)["entry"] for c in e["changes"] if "metadata" in c["value"]}


def test_every_fixture_is_accepted_and_handled(engine: Engine) -> None:
    key = get_settings().secret_key_bytes()
    cases = _cases()
    assert len(cases) > 30
    numbers = _numbers(cases)
    assert "1122334455667" in numbers and len(numbers) > 1
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Fixtures")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=key,
                            external_id="1122334455667",
                            credentials={"app_secret": SECRET, "access_token": "t", "verify_token": "v",
                                         "phone_number_id": "1122334455667"})
        # the fixtures' other numbers are channels of the same app: one callback URL (ch's) for all
        others = {n: create_channel(uow, Actor.system(org), key=f"wa-{i}", provider="whatsapp", name=n, secret_key=key,
                                    credentials={"app_secret": SECRET, "access_token": "t", "phone_number_id": n})
                  for i, n in enumerate(sorted(numbers - {"1122334455667"}))}
        uow.commit()
    with run_asgi(create_app(engine, key)) as base:
        for file, name, body in cases:
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            r = httpx.post(f"{base}/webhooks/whatsapp/{ch.webhook_key}", content=body,
                           headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"})
            assert r.status_code == 200, (file, name, r.text)
    connectors = ConnectorCache(engine, key)

    def drain() -> None:
        """Process everything, letting the backoff of retried deliveries pass (a status for a message
        the channel does not know is tried UNMATCHED_STATUS_ATTEMPTS times, then noted and dropped)."""
        for _ in range(UNMATCHED_STATUS_ATTEMPTS + 1):
            while process_webhooks_once(engine, connectors).claimed:
                pass
            with UnitOfWork(engine) as uow:
                uow.session.execute(update(WebhookEvent).where(WebhookEvent.status == "RECEIVED")
                                    .values(processed_at=WebhookEvent.processed_at - timedelta(hours=1)))
                uow.commit()

    try:
        drain()
        # a second pass over the same deliveries (a platform retry) adds nothing
        with UnitOfWork(engine) as uow:
            before = uow.session.execute(select(func.count()).select_from(Message)).scalar_one()
            uow.session.execute(update(WebhookEvent).values(status="RECEIVED", attempts=0, processed_at=None))
            uow.commit()
        drain()
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
    assert not [k for k, row in by_case.items() if webhooks.NOT_ROUTED in (row.reason or "")]
    # every message is in the channel of its number; the deliveries all arrived on ch's URL
    with UnitOfWork(engine) as uow:
        assert set(uow.session.execute(select(Message.channel_id)).scalars()) == {ch.id}
    assert any(f"routed to channel {c.key}" in (row.reason or "") for c in others.values() for row in rows)
    # fixtures reuse provider message ids across cases: ingest is idempotent by (channel, id)
    ids = {m["id"] for f, _, body in cases if f == "message"
           for e in json.loads(body)["entry"] for c in e["changes"] for m in c["value"].get("messages", [])}
    assert after == before and after >= len(ids)
