"""Admin: channels and their webhook URLs, add a channel, WhatsApp message templates (list and Sync
templates), history sync progress, problem deliveries, flow runs."""

from __future__ import annotations

import streamlit as st

from app import deps, signin
from app.deps import call, secret_key, settings
from app.text import in_words, visible
from app.views import channel_manage
from connectors.base import TEMPLATES, ConnectorError
from connectors.registry import supports
from switchboard.errors import SwitchboardError
from switchboard.services import operations, outbox, platform_signals, sync_progress
from switchboard.services.channels import ChannelView, create_channel
from switchboard.services.templates import channel_templates
from switchboard.types import Actor
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.templates import sync_channel_templates

CREDENTIAL_FIELDS = {
    "whatsapp": ["access_token", "app_secret", "verify_token", "phone_number_id", "waba_id"],
    "sandbox": ["access_token", "app_secret", "verify_token", "phone_number_id", "waba_id", "api_base_url"],
    "messenger": ["page_access_token", "app_secret", "verify_token", "page_id"],
    "instagram": ["page_access_token", "app_secret", "verify_token", "ig_user_id"],
    "telegram": ["api_id", "api_hash", "phone"],
    "twilio": ["account_sid", "auth_token", "from_number", "messaging_service_sid"],
    "email": ["from_address", "from_name", "smtp_host", "smtp_port", "smtp_username", "smtp_password",
              "postmark_server_token", "inbound_username", "inbound_password", "inbound_token"],
}
PROVIDERS = list(CREDENTIAL_FIELDS)
SECRET_WORDS = ("token", "secret", "hash", "password")  # such fields are typed masked


def _read_receipts(actor: object) -> None:
    """Per channel: mark customers' messages read and show typing (on by default); what was sent and
    what the platform refused in the last day (agents never see these failures)."""
    st.subheader("Read receipts and typing")
    try:
        rows = call(platform_signals.signals_overview, actor)
    except SwitchboardError as exc:
        st.caption(str(exc))
        return
    for r in rows:
        left, right = st.columns([2, 3])
        left.toggle(f"{r.name} ({r.provider})", value=r.send_read_receipts, key=f"read_receipts_{r.channel_id}",
                    on_change=_set_read_receipts, args=(actor, r.channel_id))
        right.text(f"last 24 h: {r.sent_last_day} sent, {r.failed_last_day} failed"
                      + (f" · last failure: {r.last_error}" if r.last_error else ""))


def _sync_progress(actor: object) -> None:
    """How far each channel's history sync got (written per batch by the sync flows)."""
    try:
        rows = call(sync_progress.progress_overview, actor)
    except SwitchboardError as exc:
        st.caption(str(exc))
        return
    if not rows:
        return
    st.subheader("History sync progress")
    for r in rows:
        p = r.progress
        st.text(f"{r.channel_name} · {r.label}: {p.sentence()} · started {p.started_at:%Y-%m-%d %H:%M}, "
                f"updated {r.updated_at:%H:%M:%S}")
        fraction = p.fraction()
        if fraction is not None and not p.finished:
            st.progress(fraction)


def _set_read_receipts(actor: object, channel_id: int) -> None:
    enabled = bool(st.session_state.get(f"read_receipts_{channel_id}"))
    deps.act("Read receipts " + ("on." if enabled else "off."), platform_signals.set_read_receipts, actor,
             channel_id, enabled=enabled)


def page() -> None:
    actor = signin.page_actor()
    st.title("Channels & health")
    try:
        ov = call(operations.overview, actor)
    except SwitchboardError as exc:
        st.error(str(exc))
        return
    base = settings().public_base_url
    st.subheader("Channels")
    if not ov.channels:
        st.info("No channels yet. Add one below.")
    st.dataframe(
        [
            {"Key": c.key, "Name": c.name, "Provider": c.provider, "Status": c.status,
             "Webhook URL": c.webhook_url(base), "Last error": c.last_error or ""}
            for c in ov.channels
        ],
        hide_index=True, width="stretch",
    )
    with st.expander("Add a channel"):
        provider = st.selectbox("Provider", PROVIDERS, key="new_channel_provider")
        with st.form("add_channel", clear_on_submit=True):
            key = st.text_input("Key (short name, e.g. wa-main)")
            name = st.text_input("Display name")
            external_id = st.text_input("Account id (phone-number id / page id / IG account id)")
            rate = st.number_input("Rate limit (messages per second; fractions allowed)", min_value=0.01,
                                   max_value=1000.0, value=80.0, step=1.0)
            creds = {f: st.text_input(f, type="password" if any(w in f for w in SECRET_WORDS) else "default")
                     for f in CREDENTIAL_FIELDS[provider]}
            if st.form_submit_button("Add channel"):
                try:
                    ch = call(create_channel, actor, key=key.strip(), provider=provider,
                              name=name.strip() or key.strip(), secret_key=secret_key(),
                              credentials={k: v for k, v in creds.items() if v},
                              external_id=external_id.strip() or None, rate_limit_per_second=float(rate))
                except SwitchboardError as exc:
                    st.error(str(exc))
                else:
                    st.success(f"Channel {ch.key} added. Webhook URL:")
                    st.code(ch.webhook_url(base), language=None)
    channel_manage.section(actor, ov.channels, CREDENTIAL_FIELDS)

    _templates(actor, [c for c in ov.channels if supports(c.provider, TEMPLATES)])

    _read_receipts(actor)
    _sync_progress(actor)

    st.subheader("Deliveries that need a look")
    st.caption(f"{ov.webhook_backlog} deliveries waiting to be processed")
    if ov.problem_deliveries:
        st.dataframe(
            [
                {"Id": e.id, "Channel": e.channel_key or "?", "Status": e.status, "Reason": e.reason or "",
                 "Received": e.received_at.strftime("%Y-%m-%d %H:%M:%S"), "Attempts": e.attempts,
                 "Body": visible(e.body_preview[:200])}
                for e in ov.problem_deliveries
            ],
            hide_index=True, width="stretch",
        )
        failed = [e.id for e in ov.problem_deliveries if e.reprocessable]
        if failed:
            pick = st.selectbox("Reprocess a failed delivery (or one not routed, once its channel was added)",
                                failed)
            if st.button("Reprocess"):
                deps.act(f"Delivery {pick} queued again.", operations.reprocess_delivery, actor, pick)
    else:
        st.success("No rejected, ignored or failed deliveries.")

    st.subheader("Messages that could not be sent")
    if ov.dead_letters:
        st.dataframe(
            [
                {"Id": m.id, "Conversation": m.conversation_id, "Error": f"{m.error_code or ''} {m.error_message or ''}",
                 "Written": m.sent_at.strftime("%Y-%m-%d %H:%M"), "Text": visible((m.body or "")[:120])}
                for m in ov.dead_letters
            ],
            hide_index=True, width="stretch",
        )
        retry = st.selectbox("Retry a failed message", [m.id for m in ov.dead_letters], key="retry_dead_letter")
        if st.button("Retry sending"):
            deps.act(f"Message {retry} queued again.", outbox.retry_dead_letter, actor, retry)
    else:
        st.success("No dead-lettered messages.")

    st.subheader("Flows")
    if not ov.last_runs:
        st.info("No flow has run yet. Start the worker: `switchboard worker`.")
    st.dataframe(
        [
            {"Flow": r.name, "Status": r.status, "Started": r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
             "Finished": r.finished_at.strftime("%H:%M:%S") if r.finished_at else "",
             "Summary": in_words(r.detail)[:200], "Error": r.error or ""}
            for r in ov.last_runs
        ],
        hide_index=True, width="stretch",
    )
    if ov.failed_runs:
        with st.expander(f"Recent failures ({len(ov.failed_runs)})"):
            for r in ov.failed_runs:
                st.text(f"{r.started_at:%Y-%m-%d %H:%M:%S}  {r.name}: {r.error}")


def _sync(actor: Actor, channel: ChannelView) -> None:
    """The Sync templates button: the same workflow step as the hourly flow and
    ``switchboard channel sync-templates``, run as the admin who clicked."""
    connectors = ConnectorCache(deps.engine(), secret_key())
    try:
        result = sync_channel_templates(deps.engine(), connectors, channel.id, actor=actor)
    except (ConnectorError, SwitchboardError) as exc:
        st.session_state[f"tpl_sync_{channel.id}"] = ("error", f"Template sync of {channel.key} failed: {exc}")
    else:
        st.session_state[f"tpl_sync_{channel.id}"] = (
            "success", f"Templates of {channel.key} synced: {result.inserted} added, {result.updated} updated, "
                       f"{result.removed} removed.")
    finally:
        connectors.close()


def _templates(actor: Actor, channels: list[ChannelView]) -> None:
    """Each WhatsApp channel's template catalogue (name, language, category, status) and its Sync button."""
    if not channels:
        return
    st.subheader("Message templates")
    for channel in channels:
        st.markdown(f"**{channel.key}**")
        if st.button("Sync templates", key=f"sync_templates_{channel.id}"):
            _sync(actor, channel)
        outcome = st.session_state.get(f"tpl_sync_{channel.id}")
        if outcome is not None:
            (st.error if outcome[0] == "error" else st.success)(outcome[1])
        try:
            templates = call(channel_templates, actor, channel.id, approved_only=False)
        except SwitchboardError as exc:
            st.error(str(exc))
            continue
        if not templates:
            st.caption("No templates synced yet (the worker syncs them hourly; needs the channel's waba_id).")
            continue
        st.dataframe(
            [{"Name": t.name, "Language": t.language, "Category": t.category or "",
              "Status": "REMOVED" if t.removed else t.status} for t in templates],
            hide_index=True, width="stretch", key=f"templates_{channel.id}",
        )
