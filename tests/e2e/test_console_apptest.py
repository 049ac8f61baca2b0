"""AppTest of the console parts of the inbox and the assignment page (issue 13), and of customer text
shown neutralised (issue 14): filters, day separators in the organization's timezone, the contact
panel's other conversations, the waiting list, capacity, reassignment, auto-assignment, words instead
of raw details."""

from __future__ import annotations

import time as clock
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, update
from streamlit.testing.v1 import AppTest

from app.text import day_label, plain
from switchboard.auth.users import create_user
from switchboard.db.schema import Attachment, Conversation, Organization, User
from switchboard.services import conversations as conv
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.services.outbox import enqueue_reply
from switchboard.settings import get_settings
from switchboard.types import Actor, AttachmentRef, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from tests.helpers import login_apptest, page_text

TZ = "Asia/Kathmandu"  # +05:45: a local time never reads like the UTC one


def _inbox() -> None:
    from app.views import inbox

    inbox.page()


def _assignment() -> None:
    from app.views import assignment

    assignment.page()


def _audit() -> None:
    from app.views import audit

    audit.render()


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Console Co")
        uow.session.execute(update(Organization).where(Organization.id == org).values(timezone=TZ))
        system = Actor.system(org)
        channels = {k: create_channel(uow, system, key=k, provider=p, name=n, secret_key=key).id
                    for k, p, n in (("wa", "whatsapp", "WhatsApp"), ("wa2", "whatsapp", "Support line"),
                                    ("ig", "instagram", "Instagram"))}
        users = {}
        for email, role in (("ann@c.test", "agent"), ("boss@c.test", "manager"), ("root@c.test", "admin")):
            users[email] = create_user(uow, org, email=email, name=email.split("@")[0].title(), role=role,
                                       secret_key=key, password="long enough password").user_id
        grant_channel_permission(uow, system, user_id=users["ann@c.test"], channel_id=channels["wa"],
                                 can_view=True, can_send=True)
        uow.commit()
    return {"org": org, "channels": channels, "users": users}


def _say(engine: Engine, channel_id: int, who: ContactRef, body: str, at: datetime, mid: str,
         attachments: tuple[AttachmentRef, ...] = ()) -> int:
    with UnitOfWork(engine) as uow:
        ingest_items(uow, channel_id=channel_id, items=[InboundMessage(
            provider_message_id=mid, contact=who, sent_at=at, body=body, attachments=attachments)])
        uow.commit()
    with UnitOfWork(engine) as uow:
        return int(uow.session.execute(
            select(Conversation.id).where(Conversation.channel_id == channel_id)
            .order_by(Conversation.id.desc()).limit(1)).scalar_one())


def _names(at: AppTest) -> list[str]:
    """The customers of the conversation list, top to bottom."""
    return [str(v) for v in at.dataframe[0].value["Customer"].tolist()] if at.dataframe else []


@pytest.mark.usefixtures("app_env")
def test_inbox_filters_by_channel_assignee_and_unread(engine: Engine, world: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    ch, boss = world["channels"], world["users"]["boss@c.test"]
    _say(engine, ch["wa"], ContactRef("491", display_name="Wanda"), "hi", now - timedelta(minutes=3), "m1")
    igor = _say(engine, ch["ig"], ContactRef("ig-1", display_name="Igor"), "hey", now - timedelta(minutes=2), "m2")
    _say(engine, ch["wa"], ContactRef("492", display_name="Walter"), "yo", now - timedelta(minutes=1), "m3")
    manager = Actor(boss, world["org"], "manager", "boss@c.test")
    with UnitOfWork(engine) as uow:
        conv.accept(uow, manager, igor)
        conv.mark_read(uow, manager, igor)
        uow.commit()

    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, boss)
    at.session_state["queue"] = "all"
    at.run()
    assert not at.exception, at.exception
    assert _names(at) == ["Walter", "Igor", "Wanda"]
    channels = at.dataframe[0].value["Channel"].tolist()
    assert channels == ["WhatsApp", "Instagram", "WhatsApp"]  # the channel on every row

    at.selectbox(key="channel_filter").set_value(ch["ig"]).run()
    assert _names(at) == ["Igor"]
    at.selectbox(key="channel_filter").set_value(None).run()
    at.selectbox(key="assignee_filter").set_value(boss).run()
    assert _names(at) == ["Igor"]
    at.selectbox(key="assignee_filter").set_value(None).run()
    at.toggle(key="unread_only").set_value(True).run()
    assert _names(at) == ["Walter", "Wanda"]
    at.selectbox(key="channel_filter").set_value(ch["ig"]).run()
    assert not at.dataframe and "No conversations match." in page_text(at)
    assert not at.exception, at.exception


@pytest.mark.usefixtures("app_env")
def test_a_search_is_kept_between_refreshes_of_the_list(engine: Engine, world: dict[str, Any]) -> None:
    from app.views import inbox

    now = datetime.now(UTC)
    ch, boss = world["channels"], world["users"]["boss@c.test"]
    _say(engine, ch["wa"], ContactRef("491", display_name="Wanda"), "my parcel is late", now - timedelta(minutes=3), "s1")
    walter = _say(engine, ch["wa"], ContactRef("492", display_name="Walter"), "hello", now - timedelta(minutes=2), "s2")
    with UnitOfWork(engine) as uow:
        conv.accept(uow, Actor(boss, world["org"], "manager", "boss@c.test"), walter)
        uow.commit()
    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, boss)
    at.session_state["queue"] = "all"
    at.run()
    assert _names(at) == ["Walter", "Wanda"]
    at.text_input(key="search").input("parcel").run()
    assert _names(at) == ["Wanda"]
    assert f"Search results are refreshed every {inbox.SEARCH_REFRESH_SECONDS} s." in page_text(at)

    _say(engine, ch["wa"], ContactRef("493", display_name="Xena"), "parcel?", now - timedelta(minutes=1), "s3")
    at.run()  # the list's 4-second refresh: the search is not run again
    assert _names(at) == ["Wanda"]
    args, _, page = at.session_state[inbox.SEARCH_KEPT]
    at.session_state[inbox.SEARCH_KEPT] = (args, clock.monotonic() - inbox.SEARCH_REFRESH_SECONDS - 1, page)  # kept long enough
    at.run()
    assert _names(at) == ["Xena", "Wanda"]
    at.text_input(key="search").input("hello").run()  # another search: at once
    assert _names(at) == ["Walter"]
    at.session_state["selected_conversation"] = walter
    at.run()
    at.button(key=f"complete_{walter}").click().run()  # the agent's own action shows at once, not in 30 s
    assert not at.exception, at.exception
    assert _names(at) == [] and "No conversations match." in page_text(at)
    at.text_input(key="search").input("").run()  # no search: every refresh reads the list
    _say(engine, ch["wa"], ContactRef("494", display_name="Yann"), "hi", now, "s4")
    at.run()
    assert _names(at)[0] == "Yann" and "Search results are refreshed" not in page_text(at)
    assert not at.exception, at.exception


@pytest.mark.usefixtures("app_env")
def test_accepting_shows_mine_whatever_queue_was_clicked(engine: Engine, world: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    ch, boss = world["channels"], world["users"]["boss@c.test"]
    _say(engine, ch["wa"], ContactRef("491", display_name="Wanda"), "hi", now - timedelta(minutes=3), "q1")
    walter = _say(engine, ch["wa"], ContactRef("492", display_name="Walter"), "yo", now - timedelta(minutes=2), "q2")
    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, boss)
    at.session_state["queue_control"] = "all"  # the agent clicked "All I can see"
    at.run()
    assert _names(at) == ["Walter", "Wanda"]
    at.session_state["selected_conversation"] = walter
    at.run()
    at.button(key=f"accept_{walter}").click().run()
    assert not at.exception, at.exception
    assert at.session_state["queue"] == at.session_state["queue_control"] == "mine"
    assert _names(at) == ["Walter"]
    at.session_state["queue_control"] = "unassigned"  # and the control still works afterwards
    at.run()
    assert _names(at) == ["Wanda"]


@pytest.mark.usefixtures("app_env")
def test_thread_has_day_separators_and_local_times(engine: Engine, world: dict[str, Any]) -> None:
    tz = ZoneInfo(TZ)
    now = datetime.now(tz)
    midnight = datetime.combine(now.date(), time.min, tzinfo=tz)
    times = [midnight - timedelta(days=3) + timedelta(hours=10), midnight - timedelta(minutes=30),
             max(midnight, now - timedelta(minutes=1))]
    who = ContactRef("491", display_name="Wanda")
    cid = 0
    for i, t in enumerate(times):
        cid = _say(engine, world["channels"]["wa"], who, f"message {i}", t.astimezone(UTC), f"d{i}")

    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, world["users"]["boss@c.test"])
    at.session_state["selected_conversation"] = cid
    at.run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    separators = [c for c in captions if c.startswith("——")]
    old = (midnight - timedelta(days=3)).date()
    assert separators == [f"—— {day_label(old, now.date())} ——", "—— Yesterday ——", "—— Today ——"]
    assert day_label(old, now.date()) == f"{old:%a} {old.day} {old:%b}"
    assert at.dataframe[0].value["When"].tolist() == [f"{times[-1]:%H:%M}"]  # the list: local time today
    for t in times:  # each message's time in the organization's timezone (+05:45), not UTC
        assert any(c.startswith(plain(f"{t:%H:%M}")) for c in captions), (t, captions)
        assert not any(c.startswith(plain(f"{t.astimezone(UTC):%H:%M}")) for c in captions)


@pytest.mark.usefixtures("app_env")
def test_contact_panel_opens_another_conversation(engine: Engine, world: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    who = ContactRef("491", display_name="Wanda")
    first = _say(engine, world["channels"]["wa"], who, "on the main line", now - timedelta(hours=1), "p1")
    second = _say(engine, world["channels"]["wa2"], who, "on the support line", now, "p2")
    assert first != second

    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, world["users"]["boss@c.test"])
    at.session_state["selected_conversation"] = first
    at.run()
    assert not at.exception, at.exception
    assert "on the main line" in page_text(at)
    at.button(key=f"open_conv_{first}_{second}").click().run()
    assert not at.exception, at.exception
    assert at.session_state["selected_conversation"] == second
    assert at.query_params["c"] == str(second)
    assert "on the support line" in page_text(at)


@pytest.mark.usefixtures("app_env")
def test_assignment_page(engine: Engine, world: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    ch, users = world["channels"], world["users"]
    ids = {}
    for name, minutes in (("Recent", 5), ("Oldest", 125), ("Middle", 30)):
        ids[name] = _say(engine, ch["wa"], ContactRef(name.lower(), display_name=name), "help",
                         now - timedelta(minutes=minutes), f"w-{name}")

    at = login_apptest(AppTest.from_function(_assignment, default_timeout=30), engine, users["boss@c.test"])
    at.run()
    assert not at.exception, at.exception
    waiting = next(d for d in at.dataframe if "Waiting" in d.value.columns).value
    assert waiting["Customer"].tolist() == ["Oldest", "Middle", "Recent"]  # longest wait first
    assert waiting["Waiting"].tolist()[:2] == ["2 h 5 min", "30 min"]
    agents = next(d for d in at.dataframe if "Capacity" in d.value.columns).value
    assert set(agents["Agent"]) == {"Ann", "Boss", "Root"} and set(agents["Presence"]) == {"⚪ offline"}

    # capacity, edited by a manager
    ann = next(o for o in at.selectbox(key="capacity_agent").options if o.startswith("Ann"))
    at.selectbox(key="capacity_agent").select(ann).run()
    at.number_input(key=f"capacity_value_{users['ann@c.test']}").set_value(2).run()
    at.button(key="capacity_save").click().run()
    assert not at.exception, at.exception
    assert "Ann now takes up to 2 conversations at once." in page_text(at)
    with UnitOfWork(engine) as uow:
        assert uow.session.get(User, users["ann@c.test"]).max_concurrent == 2  # type: ignore[union-attr]

    # reassign the longest-waiting conversation to Ann, found by a search (the list offers the most
    # recently active ones)
    assert len(at.selectbox(key="reassign_conversation").options) == 3
    at.text_input(key="reassign_search").input("nobody-like-this").run()
    assert "No open conversation matches 'nobody-like-this'." in page_text(at)
    at.text_input(key="reassign_search").input("olde").run()
    found = at.selectbox(key="reassign_conversation").options
    assert len(found) == 1 and "Oldest" in found[0]
    target = next(o for o in at.selectbox(key="reassign_conversation").options if "Oldest" in o)
    at.selectbox(key="reassign_conversation").select(target).run()
    ann = next(o for o in at.selectbox(key="reassign_agent").options if o.startswith("Ann"))
    at.selectbox(key="reassign_agent").select(ann).run()
    at.button(key="reassign_go").click().run()
    assert not at.exception, at.exception
    assert "is now with Ann" in page_text(at), page_text(at)
    with UnitOfWork(engine) as uow:
        row = uow.session.get(Conversation, ids["Oldest"])
        assert row is not None and row.assigned_user_id == users["ann@c.test"] and row.status == "ASSIGNED"
    waiting = next(d for d in at.dataframe if "Waiting" in d.value.columns).value
    assert waiting["Customer"].tolist() == ["Middle", "Recent"]

    # auto-assignment: managers read it, admins switch it here
    assert not at.toggle and "Auto-assignment is off." in page_text(at) and "Only admins" in page_text(at)
    at = login_apptest(AppTest.from_function(_assignment, default_timeout=30), engine, users["root@c.test"])
    at.run()
    at.toggle(key="auto_assign").set_value(True).run()
    assert not at.exception, at.exception
    assert "Auto-assignment on." in page_text(at)
    with UnitOfWork(engine) as uow:
        assert uow.session.get(Organization, world["org"]).auto_assign  # type: ignore[union-attr]

    # the audit log says what changed in words, not as a dict
    from switchboard.auth.audit import record_audit

    with UnitOfWork(engine) as uow:  # enough entries for two pages of 10 before the changes above
        for i in range(15):
            record_audit(uow, organization_id=world["org"], actor_user_id=users["root@c.test"],
                         action="user.test_entry", target=f"entry {i}", now=now - timedelta(days=1))
        uow.commit()
    at = login_apptest(AppTest.from_function(_audit, default_timeout=30), engine, users["root@c.test"])
    at.run()
    details = at.dataframe[0].value["details"].tolist()
    assert "max concurrent: 5 → 2" in details and "auto assign: no → yes" in details, details
    # older entries, a page at a time, and back to the newest
    newest = at.dataframe[0].value["#"].tolist()
    at.number_input(key="audit_limit").set_value(10).run()
    first = at.dataframe[0].value["#"].tolist()
    assert first == newest[:10] and len(newest) > 10
    at.button(key="audit_older").click().run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value["#"].tolist() == newest[10:20]
    assert f"Entries older than #{first[-1]}." in page_text(at)
    at.button(key="audit_newest").click().run()
    assert at.dataframe[0].value["#"].tolist() == first
    # one category, one person
    at.selectbox(key="audit_filter").set_value("organization settings").run()
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value["action"]) == {"organization.updated"}
    at.selectbox(key="audit_filter").set_value("user changes").run()
    at.selectbox(key="audit_by").set_value("Ann <ann@c.test>").run()
    assert not at.exception, at.exception
    assert "No entries match." in page_text(at)  # Ann changed nobody
    at.selectbox(key="audit_by").set_value("Root <root@c.test>").run()
    assert set(at.dataframe[0].value["by"]) == {"root@c.test"}
    assert all(a.startswith("user.") for a in at.dataframe[0].value["action"])
    # up to a day (UTC): yesterday's entries, not today's changes
    at.selectbox(key="audit_filter").set_value("everything").run()
    at.selectbox(key="audit_by").set_value("anyone").run()
    yesterday = (now - timedelta(days=1)).date()
    at.date_input(key="audit_until").set_value(yesterday).run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value["action"].tolist() == ["user.test_entry"] * 10  # 10 rows a page (above)
    assert f"Entries up to the end of {yesterday:%a %d %b %Y} (UTC)." in page_text(at)
    last = at.dataframe[0].value["#"].tolist()[-1]
    at.button(key="audit_older").click().run()
    assert at.dataframe[0].value["action"].tolist() == ["user.test_entry"] * 5
    assert f"Entries older than #{last}, up to the end of {yesterday:%a %d %b %Y} (UTC)." in page_text(at)
    at.date_input(key="audit_until").set_value(yesterday - timedelta(days=30)).run()
    assert "No entries match." in page_text(at)


@pytest.mark.usefixtures("app_env")
def test_customer_text_is_shown_neutralised(engine: Engine, world: dict[str, Any], tmp_path: Path) -> None:
    who = ContactRef("491", display_name="invoice\u202etxt.exe")
    cid = _say(engine, world["channels"]["wa"], who, "pay\u200b now", datetime.now(UTC), "x1",
               attachments=(AttachmentRef("document", "application/pdf", file_name="*bold*.pdf"),
                            AttachmentRef("document", "application/pdf", file_name="_it_\u202efdp.exe")))
    stored = tmp_path / "stored.pdf"
    stored.write_bytes(b"%PDF-1.4\n")
    with UnitOfWork(engine) as uow:  # the first file was downloaded: its button shows
        uow.session.execute(update(Attachment).where(Attachment.file_name == "*bold*.pdf")
                            .values(local_path=str(stored)))
        uow.commit()

    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, world["users"]["boss@c.test"])
    at.run()
    assert not at.exception, at.exception
    row = at.dataframe[0].value
    assert row["Customer"].tolist() == ["invoice⟦U+202E⟧txt.exe"]
    assert "\u202e" not in row.to_string() and "\u200b" not in row.to_string()

    at.session_state["selected_conversation"] = cid
    at.run()
    assert not at.exception, at.exception
    shown = page_text(at)
    assert "invoice⟦U+202E⟧txt.exe" in shown and "pay⟦U+200B⟧ now" in shown  # header, profile, body
    assert "Name: invoice⟦U+202E⟧txt.exe" in shown
    assert "📎 document: _it_⟦U+202E⟧fdp.exe (downloading…)" in shown  # st.text: as typed, marker shown
    assert "\u202e" not in shown and "\u200b" not in shown
    buttons = at.get("download_button")
    assert len(buttons) == 1
    label = buttons[0].proto.label
    assert label == plain("📎 document: *bold*.pdf") and "\\*bold\\*" in label  # no Markdown: escaped


def _new_message() -> None:
    from app.views import new_message

    new_message.page()


def _outbox() -> None:
    from app.views import outbox

    outbox.page()


@pytest.mark.usefixtures("app_env")
def test_new_message_and_outbox_show_names_neutralised(engine: Engine, world: dict[str, Any]) -> None:
    boss = world["users"]["boss@c.test"]
    cid = _say(engine, world["channels"]["wa"], ContactRef("491", display_name="invoice\u202etxt.exe"), "hi",
               datetime.now(UTC), "n1")
    manager = Actor(boss, world["org"], "manager", "boss@c.test")
    with UnitOfWork(engine) as uow:
        conv.accept(uow, manager, cid)
        enqueue_reply(uow, manager, cid, "hello", idempotency_key="console-n1")
        uow.commit()

    at = login_apptest(AppTest.from_function(_new_message, default_timeout=30), engine, boss)
    at.run()
    assert not at.exception, at.exception
    wa = next(o for o in at.selectbox(key="nm_channel").options if o.startswith("WhatsApp"))
    at.selectbox(key="nm_channel").select(wa).run()
    contact = at.selectbox(key=f"nm_contact_{world['channels']['wa']}")
    assert any(o.startswith("invoice⟦U+202E⟧txt.exe · ") for o in contact.options), contact.options

    at = login_apptest(AppTest.from_function(_outbox, default_timeout=30), engine, boss)
    at.run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value["To"].tolist() == ["invoice⟦U+202E⟧txt.exe"]


def _channels_page() -> None:
    from app.views import admin_channels

    admin_channels.page()


@pytest.mark.usefixtures("app_env")
def test_flow_run_summary_in_words(engine: Engine, world: dict[str, Any]) -> None:
    from switchboard.services import runs

    with UnitOfWork(engine) as uow:  # a run of one of the organization's channels: its details are shown
        run_id = runs.start_run(uow, "telegram-sync", channel_id=world["channels"]["wa"])
        runs.finish_run(uow, run_id, ok=True, detail={"claimed": 3, "sent": 3, "paused": False})
        uow.commit()
    at = login_apptest(AppTest.from_function(_channels_page, default_timeout=30), engine,
                       world["users"]["root@c.test"])
    at.run()
    assert not at.exception, at.exception
    flows = next(d for d in at.dataframe if "Summary" in d.value.columns).value
    summary = flows["Summary"].tolist()[0]  # (JSONB keeps no key order)
    assert sorted(summary.split(", ")) == ["3 claimed", "3 sent", "paused: no"], summary
