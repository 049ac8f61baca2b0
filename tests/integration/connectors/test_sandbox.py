"""The sandbox platform driven through the real WhatsApp connector over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from connectors.base import (
    AuthenticationError,
    ConnectorError,
    OutsideWindowError,
    PermanentError,
    RateLimited,
)
from connectors.registry import get_connector
from connectors.sandbox import SandboxConfig, create_app
from connectors.whatsapp import WhatsAppConnector
from switchboard.types import AttachmentRef, InboundMessage, OutboundRequest, StatusUpdate
from tests.fakes.receiver import WebhookSink
from tests.fakes.server import run_asgi

SECRET = "sandbox-app-secret"
TOKEN = "sandbox-token"
PHONE_ID = "1234567890"


@dataclass
class Rig:
    sandbox_url: str
    sink: WebhookSink
    connector: WhatsAppConnector
    control: httpx.Client


def _rig(customers: int = 0, speed: float = 200.0, seed: int | None = 7, **extra: object) -> Iterator[Rig]:
    """A sandbox and a webhook sink; the platform's rules (window, templates) are off unless a test
    turns them on: most tests here write to customers who never wrote first."""
    extra = {"enforce_window": False, "enforce_templates": False, **extra}
    receiver_side = WhatsAppConnector(phone_number_id=PHONE_ID, access_token=TOKEN, app_secret=SECRET,
                                      verify_token="vt", provider="sandbox")
    sink = WebhookSink(receiver_side)
    with run_asgi(sink.app) as sink_url:
        config = SandboxConfig(phone_number_id=PHONE_ID, access_token=TOKEN, app_secret=SECRET,
                               webhook_url=f"{sink_url}/hook", customers=customers, speed=speed,
                               seed=seed, **extra)  # type: ignore[arg-type]
        with run_asgi(create_app(config)) as sandbox_url:
            connector = get_connector("sandbox", external_id=PHONE_ID, credentials={
                "access_token": TOKEN, "app_secret": SECRET, "verify_token": "vt",
                "phone_number_id": PHONE_ID, "api_base_url": sandbox_url})
            assert isinstance(connector, WhatsAppConnector)
            with connector, httpx.Client(base_url=sandbox_url, timeout=10) as control:
                yield Rig(sandbox_url, sink, connector, control)
    receiver_side.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from _rig()


def test_inbound_control_posts_signed_webhook(rig: Rig) -> None:
    resp = rig.control.post("/_sandbox/inbound", json={"from": "15551230001", "name": "Ana", "text": "hello"})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["delivered"] is True and data["id"].startswith("wamid.")
    items = rig.sink.wait_for(lambda xs: len(xs) >= 1)
    msg = items[0]
    assert isinstance(msg, InboundMessage)
    assert msg.provider_message_id == data["id"]
    assert msg.body == "hello" and msg.contact.display_name == "Ana"
    assert msg.contact.provider_contact_id == "15551230001"
    assert rig.sink.rejected == []


def test_send_text_gets_ordered_statuses_with_callback_data(rig: Rig) -> None:
    result = rig.connector.send(OutboundRequest(recipient_id="15551230002", body="Hi there",
                                                idempotency_key="out-1"))
    assert result.provider_message_id.startswith("wamid.")
    items = rig.sink.wait_for(lambda xs: len(xs) >= 3)
    statuses = [i for i in items if isinstance(i, StatusUpdate)]
    assert [s.status for s in statuses] == ["SENT", "DELIVERED", "READ"]
    assert {s.provider_message_id for s in statuses} == {result.provider_message_id}
    assert statuses[0].raw.get("biz_opaque_callback_data") == "out-1"
    sent = rig.control.get("/_sandbox/sent").json()["messages"]
    assert sent[0]["body"] == "Hi there" and sent[0]["to"] == "15551230002"


def test_template_reply_and_mark_read(rig: Rig) -> None:
    inbound = rig.control.post("/_sandbox/inbound", json={"from": "15551230003", "text": "?"}).json()
    rig.connector.mark_read("15551230003", inbound["id"])
    res = rig.connector.send(OutboundRequest(recipient_id="15551230003", body="answer",
                                             reply_to_provider_message_id=inbound["id"]))
    tpl = rig.connector.send(OutboundRequest(recipient_id="15551230003",
                                             template={"name": "hello_world", "language": "en_US"}))
    state = rig.control.get("/_sandbox/state").json()
    assert state["marked_read"] == [inbound["id"]]
    sent = {m["id"]: m for m in rig.control.get("/_sandbox/sent").json()["messages"]}
    assert sent[res.provider_message_id]["payload"]["context"] == {"message_id": inbound["id"]}
    assert sent[tpl.provider_message_id]["payload"]["template"]["language"] == {"code": "en_US"}


def test_media_upload_send_and_download(rig: Rig, tmp_path: Path) -> None:
    from connectors.sandbox.customers import TINY_PNG

    src = tmp_path / "photo.png"
    src.write_bytes(TINY_PNG)
    res = rig.connector.send(OutboundRequest(
        recipient_id="15551230004", body="look",
        attachments=(AttachmentRef(kind="image", mime_type="image/png", data={"path": str(src)}),)))
    sent = rig.control.get("/_sandbox/sent").json()["messages"]
    media_id = sent[0]["payload"]["image"]["id"]
    assert sent[0]["id"] == res.provider_message_id and sent[0]["body"] == "look"
    stored = rig.connector.download_media(media_id, tmp_path / "media")
    assert stored.path.read_bytes() == TINY_PNG and stored.size_bytes == len(TINY_PNG)
    assert stored.path.is_relative_to(tmp_path / "media") and stored.mime_type == "image/png"
    again = rig.connector.download_media(media_id, tmp_path / "media")
    assert again.path == stored.path  # content-addressed: idempotent
    with pytest.raises(PermanentError) as too_big:
        rig.connector.download_media(media_id, tmp_path / "m2", max_bytes=10)
    assert too_big.value.code == "media_too_large"
    with pytest.raises(PermanentError) as bad_type:
        rig.connector.download_media(media_id, tmp_path / "m3", allowed_mime={"application/pdf"})
    assert bad_type.value.code == "media_type_not_allowed"
    assert not list((tmp_path / "m2").rglob("*")) and not list((tmp_path / "m3").rglob("*"))


@pytest.mark.parametrize(("code", "status", "error_type"), [
    (130429, 400, RateLimited), (131056, 400, RateLimited), (131047, 400, OutsideWindowError),
    (131026, 400, PermanentError), (190, 401, AuthenticationError),
])
def test_forced_platform_errors_are_classified(rig: Rig, code: int, status: int,
                                               error_type: type[ConnectorError]) -> None:
    rig.control.post("/_sandbox/fail-next", json={"code": code, "status": status})
    with pytest.raises(error_type) as info:
        rig.connector.send(OutboundRequest(recipient_id="15551230005", body="x"))
    assert info.value.code == str(code) and info.value.status == status
    # the failure was one-shot: the next send succeeds
    assert rig.connector.send(OutboundRequest(recipient_id="15551230005", body="x")).provider_message_id


def test_bad_token_and_unknown_recipient(rig: Rig) -> None:
    bad = WhatsAppConnector(phone_number_id=PHONE_ID, access_token="wrong", app_secret=SECRET,
                            api_base_url=rig.sandbox_url)
    with bad, pytest.raises(AuthenticationError) as info:
        bad.send(OutboundRequest(recipient_id="15551230006", body="x"))
    assert info.value.code == "190"
    res = rig.connector.send(OutboundRequest(recipient_id="99912345", body="to nowhere"))
    items = rig.sink.wait_for(lambda xs: any(isinstance(i, StatusUpdate) for i in xs))
    failed = next(i for i in items if isinstance(i, StatusUpdate))
    assert failed.status == "FAILED" and failed.error_code == "131026"
    assert failed.provider_message_id == res.provider_message_id


def test_the_platform_rules_are_on_by_default() -> None:
    config = SandboxConfig(phone_number_id=PHONE_ID, access_token=TOKEN, app_secret=SECRET, webhook_url="")
    assert (config.enforce_window, config.enforce_templates, config.waba_id) == (True, True, "sandbox-waba")


def test_enforced_window_needs_template() -> None:
    for rig in _rig(enforce_window=True, enforce_templates=True):
        with pytest.raises(OutsideWindowError) as info:
            rig.connector.send(OutboundRequest(recipient_id="15551230007", body="cold message"))
        assert info.value.code == "131047" and "24 hours" in str(info.value)
        rig.connector.send(OutboundRequest(recipient_id="15551230007", template={"name": "hello_world"}))
        rig.control.post("/_sandbox/inbound", json={"from": "15551230007", "text": "hi"})
        rig.connector.send(OutboundRequest(recipient_id="15551230007", body="inside the window"))


def test_a_customer_who_wrote_more_than_24_hours_ago_needs_a_template() -> None:
    now = time.time()
    known = {"15551230020": now - 25 * 3600, "+15551230021": now - 23 * 3600}
    for rig in _rig(enforce_window=True, known_customers=known):
        with pytest.raises(OutsideWindowError):
            rig.connector.send(OutboundRequest(recipient_id="15551230020", body="too late"))
        rig.connector.send(OutboundRequest(recipient_id="15551230021", body="still inside"))
        assert [m["to"] for m in rig.control.get("/_sandbox/sent").json()["messages"]] == ["15551230021"]


def test_the_template_catalogue_is_served_with_paging() -> None:
    from connectors.sandbox.templates import DEFAULT_TEMPLATES

    for rig in _rig():
        first = rig.control.get("/v21.0/sandbox-waba/message_templates", params={"limit": 4},
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert first.status_code == 200, first.text
        page = first.json()
        assert len(page["data"]) == 4 and page["paging"]["next"]
        rest = httpx.get(page["paging"]["next"], headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert "next" not in rest["paging"]
        assert [t["name"] for t in page["data"] + rest["data"]] == [t["name"] for t in DEFAULT_TEMPLATES]
        assert {t["status"] for t in rest["data"]} >= {"PENDING", "REJECTED"}
        assert rig.control.get("/v21.0/other-waba/message_templates",
                               headers={"Authorization": f"Bearer {TOKEN}"}).json()["error"]["code"] == 100
        assert rig.control.get("/v21.0/sandbox-waba/message_templates").status_code == 401
        # the real connector reads every page
        lister = get_connector("sandbox", external_id=PHONE_ID, credentials={
            "access_token": TOKEN, "app_secret": SECRET, "phone_number_id": PHONE_ID, "waba_id": "sandbox-waba",
            "api_base_url": rig.sandbox_url})
        assert isinstance(lister, WhatsAppConnector)
        with lister:
            listed = lister.list_templates()
        assert len(listed) == len(DEFAULT_TEMPLATES)
        order = next(t for t in listed if t.name == "order_update")
        assert [c["type"] for c in order.components] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]


def _template(name: str, language: str = "en_US", **parts: list[str]) -> dict[str, object]:
    components: list[dict[str, object]] = []
    for part, values in parts.items():
        params = [{"type": "text", "text": v} for v in values]
        if part.startswith("button"):
            components.append({"type": "button", "sub_type": "url", "index": part[-1], "parameters": params})
        else:
            components.append({"type": part, "parameters": params})
    return {"name": name, "language": {"code": language}, "components": components}


def test_template_sends_are_checked_like_the_platform() -> None:
    for rig in _rig(enforce_templates=True):
        ok = _template("order_update", header=["#7"], body=["Ana", "#7", "today"], button0=["7"])
        rig.connector.send(OutboundRequest(recipient_id="15551230030", template=ok))
        [sent] = rig.control.get("/_sandbox/sent").json()["messages"]
        assert sent["body"] == "Order #7\nHi Ana, your order #7 ships today.\nReply STOP to opt out"
        refusals = [
            (_template("order_update", header=["#7"], body=["Ana", "#7"], button0=["7"]), "132000", "body"),
            (_template("order_update", body=["Ana", "#7", "today"], button0=["7"]), "132000", "header"),
            (_template("hello_world", body=["extra"]), "132000", "body"),
            (_template("no_such_template"), "132001", "does not exist"),
            (_template("hello_world", "de"), "132001", "does not exist"),
            (_template("spring_sale", body=["20%"]), "132001", "pending"),
            (_template("crypto_offer", body=["x"]), "132001", "rejected"),
        ]
        for template, code, detail in refusals:
            with pytest.raises(PermanentError) as info:
                rig.connector.send(OutboundRequest(recipient_id="15551230030", template=template))
            assert (info.value.code, detail in str(info.value)) == (code, True), str(info.value)
        assert len(rig.control.get("/_sandbox/sent").json()["messages"]) == 1


def test_webhooks_are_retried_until_the_receiver_answers() -> None:
    for rig in _rig():
        rig.sink.fail_first = 2
        data = rig.control.post("/_sandbox/inbound", json={"from": "15551230008", "text": "retry me"}).json()
        assert data["delivered"] is True
        assert [i.body for i in rig.sink.items] == ["retry me"]


def test_simulated_customers_write_and_read_replies() -> None:
    for rig in _rig(customers=3, speed=2000.0, seed=42):
        items = rig.sink.wait_for(
            lambda xs: len({i.contact.provider_contact_id for i in xs if isinstance(i, InboundMessage)}) == 3,
            timeout=20)
        first = next(i for i in items if isinstance(i, InboundMessage))
        reply = rig.connector.send(OutboundRequest(recipient_id=first.contact.provider_contact_id,
                                                   body="How can I help?"))
        reply_id = reply.provider_message_id
        rig.sink.wait_for(lambda xs: any(isinstance(i, StatusUpdate) and i.status == "READ"
                                         and i.provider_message_id == reply_id for i in xs),  # noqa: B023
                          timeout=20)
        customers = rig.control.get("/_sandbox/state").json()["customers"]
        assert len(customers) == 3 and all(c["name"] and c["phone"] for c in customers)
        assert rig.sink.rejected == []


def test_ignored_customers_nudge_give_up_and_come_back() -> None:
    from connectors.sandbox.customers import NUDGES, TOPICS

    openings = {t.opening.split("{")[0] for t in TOPICS}
    for rig in _rig(customers=2, speed=10000.0, seed=1, come_back_probability=1.0):
        def came_back(xs: list[object]) -> bool:
            per_phone: dict[str, list[str]] = {}
            for i in xs:
                if isinstance(i, InboundMessage):
                    per_phone.setdefault(i.contact.provider_contact_id, []).append(i.body or "")
            return any(sum(1 for b in bodies if any(b.startswith(o) for o in openings)) >= 2
                       and any(b in NUDGES for b in bodies) for bodies in per_phone.values())

        rig.sink.wait_for(came_back, timeout=20)
        customers = rig.control.get("/_sandbox/state").json()["customers"]
        assert max(c["conversations"] for c in customers) >= 2
        assert all(c["replies_read"] == 0 for c in customers)


def test_download_attachments_keeps_refusals_on_the_attachment(rig: Rig, tmp_path: Path) -> None:
    from connectors.sandbox.customers import TINY_PNG

    media_id = rig.connector.upload_media(_write(tmp_path / "p.png", TINY_PNG), "image/png")
    image = AttachmentRef(kind="image", provider_media_id=media_id, mime_type="image/png")
    location = AttachmentRef(kind="location", data={"latitude": 1})
    stored, untouched = rig.connector.download_attachments((image, location), tmp_path / "media")
    assert untouched == location
    assert stored.sha256 and stored.size_bytes == len(TINY_PNG)
    assert Path(stored.data["path"]).read_bytes() == TINY_PNG
    (refused,) = rig.connector.download_attachments((image,), tmp_path / "small", max_bytes=5)
    assert refused.data["download_error_code"] == "media_too_large" and "path" not in refused.data


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_sandbox_answers_a_connection_test_and_debug_token(rig: Rig) -> None:
    from connectors.base import IDENTITY, TOKEN_EXPIRY
    from connectors.registry import port

    identity = port(rig.connector, IDENTITY).check_identity()
    assert identity.account_id == PHONE_ID and "Sandbox" in (identity.name or "")
    assert port(rig.connector, TOKEN_EXPIRY).token_expiry() is None  # the sandbox's token never expires
    wrong = get_connector("sandbox", external_id=PHONE_ID, credentials={
        "access_token": "stale", "app_secret": SECRET, "phone_number_id": PHONE_ID, "api_base_url": rig.sandbox_url})
    with closing(wrong), pytest.raises(AuthenticationError):
        port(wrong, IDENTITY).check_identity()
