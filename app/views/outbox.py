"""Manager: the outbox — every outbound message with its status, channel, agent, attempts and error;
filters; retry of failed and dead-lettered messages; cancel of one still waiting to be sent; for a
message that may have been sent (an unknown outcome), send it again or mark it as sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import streamlit as st

from app import signin
from app.deps import act_and_rerun, call, show_outcome
from app.text import visible
from switchboard.errors import SwitchboardError
from switchboard.policy import Action
from switchboard.services import outbox, outbox_views
from switchboard.types import Actor

PAGE_SIZE = 50
STATUS_LABEL = {"PENDING": "🕓 pending", "SENT": "✓ sent", "DELIVERED": "✓✓ delivered", "READ": "✓✓ read",
                "FAILED": "⚠️ failed", "UNKNOWN": "❓ may have been sent", outbox_views.DEAD_LETTER: "☠️ dead letter"}


def _when(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _date_range(value: Any) -> tuple[datetime | None, datetime | None]:
    """The date filter as [from, to) in UTC: whole days, the end day included."""
    days = [d for d in (value if isinstance(value, list | tuple) else [value]) if isinstance(d, date)]
    if not days:
        return None, None
    start = datetime.combine(days[0], time.min, tzinfo=UTC)
    end = datetime.combine(days[-1], time.min, tzinfo=UTC) + timedelta(days=1)
    return start, end


def _reset_pages() -> None:
    st.session_state["outbox_cursors"] = []


def _filters(actor: Actor) -> dict[str, Any]:
    choices = call(outbox_views.outbox_filters, actor)
    channels = dict(choices.channels)
    agents = dict(choices.agents)
    c1, c2, c3, c4 = st.columns(4)
    status = c1.selectbox("Status", [None, *choices.statuses], key="outbox_status", on_change=_reset_pages,
                          format_func=lambda s: "Any status" if s is None else STATUS_LABEL.get(s, s))
    channel = c2.selectbox("Channel", [None, *channels], key="outbox_channel", on_change=_reset_pages,
                           format_func=lambda c: "Every channel" if c is None else channels[c])
    agent = c3.selectbox("Agent", [None, *agents], key="outbox_agent", on_change=_reset_pages,
                         format_func=lambda a: "Everyone" if a is None else agents[a])
    dates = c4.date_input("Written between", value=[], key="outbox_dates", on_change=_reset_pages)
    created_from, created_to = _date_range(dates)
    return {"status": status, "channel_id": channel, "agent_user_id": agent, "created_from": created_from,
            "created_to": created_to}


def _table(items: list[outbox_views.OutboxItem]) -> None:
    st.dataframe(
        [
            {"Id": m.id, "Status": STATUS_LABEL.get(outbox_views.DEAD_LETTER if m.is_dead_letter else m.status,
                                                     m.status),
             "Channel": m.channel_name, "To": visible(m.contact_name), "Agent": m.agent_name or m.author_kind,
             "Attempts": m.attempts, "Error": " ".join(x for x in (m.error_code, m.error_message) if x),
             "Written": _when(m.created_at), "Sent": _when(m.sent_at),
             "Text": visible((m.body or f"[{m.content_type}]")[:120])}
            for m in items
        ],
        hide_index=True, width="stretch",
        column_config={"Text": st.column_config.TextColumn(width="large"),
                       "Error": st.column_config.TextColumn(width="medium")},
    )


def _unknown(actor: Actor, items: list[outbox_views.OutboxItem]) -> None:
    """Messages whose send may have gone out (the platform's answer was lost, docs/delivery.md): a person
    decides — send again (the customer may get it twice) or mark it as sent (never sent again)."""
    unknown = [m.id for m in items if m.unknown]
    if not unknown:
        return
    st.warning(f"{len(unknown)} message{'s' if len(unknown) != 1 else ''} on this page may have been sent: the "
               "platform did not answer in time. Check with the customer (or the platform's app), then send "
               "it again or mark it as sent.", icon=":material/help:")
    c1, c2, c3 = st.columns([2, 1, 1])
    pick = c1.selectbox("Message that may have been sent", unknown, key="outbox_unknown_pick")
    if c2.button("Send again", key="outbox_resend"):
        act_and_rerun(f"Message {pick} will be sent again.", outbox.resend_unknown, actor, pick)
    if c3.button("Mark as sent", key="outbox_mark_sent"):
        act_and_rerun(f"Message {pick} is marked as sent; it will not be sent again.", outbox.mark_unknown_sent,
                      actor, pick)


def _actions(actor: Actor, items: list[outbox_views.OutboxItem]) -> None:
    _unknown(actor, items)
    failed = [m.id for m in items if m.retryable]
    pending = [m.id for m in items if m.cancellable]
    left, right = st.columns(2)
    with left:
        if failed:
            pick = st.selectbox("Retry a failed message", failed, key="outbox_retry_pick")
            if st.button("Retry", key="outbox_retry"):
                act_and_rerun(f"Message {pick} queued again.", outbox.retry_dead_letter, actor, pick)
        else:
            st.caption("No failed message on this page.")
    with right:
        if pending:
            pick = st.selectbox("Cancel a message still waiting to be sent", pending, key="outbox_cancel_pick")
            if st.button("Cancel sending", key="outbox_cancel"):
                act_and_rerun(f"Message {pick} will not be sent.", outbox_views.cancel_pending, actor, pick)
        else:
            st.caption("No pending message on this page.")


def page() -> None:
    actor = signin.page_actor(Action.MANAGE_OUTBOX)
    st.title("Outbox")
    show_outcome()
    try:
        filters = _filters(actor)
        cursors: list[str] = st.session_state.setdefault("outbox_cursors", [])
        result = call(outbox_views.list_outbox, actor, **filters, cursor=cursors[-1] if cursors else None,
                      limit=PAGE_SIZE)
    except SwitchboardError as exc:
        st.error(str(exc))
        return
    if not result.items:
        st.info("No outbound messages match." if any(v is not None for v in filters.values())
                else "Nothing has been sent yet.")
    else:
        _table(result.items)
        _actions(actor, result.items)
    prev, nxt = st.columns(2)
    if cursors and prev.button("← Newer", key="outbox_newer"):
        cursors.pop()
        st.rerun()
    if result.next_cursor and nxt.button("Older →", key="outbox_older"):
        cursors.append(result.next_cursor)
        st.rerun()
