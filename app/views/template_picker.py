"""The messaging window and WhatsApp templates in the pages: the inbox's reply box and New message.

* :func:`show_window` shows a conversation's window (inside, how long is left; HUMAN_AGENT tag;
  template only; closed) with the sentence of :mod:`switchboard.domain.messaging_window`.
* :func:`pick_template` lets the agent pick an approved template, fill its ``{{n}}`` parameters and
  see the rendered preview (:mod:`switchboard.domain.templates`); it returns what to send.
* :func:`reply_options` is the reply box's part: it shows the window and, where free text is not
  allowed, offers the templates (WhatsApp) or says why nothing can be sent (Messenger/Instagram after
  7 days). The page decides nothing itself: the window comes from the services, which check again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import streamlit as st

from app.deps import call
from app.views import list_state
from switchboard.domain.messaging_window import MessagingWindow, WindowState
from switchboard.domain.templates import render
from switchboard.errors import SwitchboardError
from switchboard.services import outbox
from switchboard.services.templates import TemplateView, enqueue_template, list_templates
from switchboard.types import Actor

_SLOT_LABEL = {"header": "Header", "body": "Body"}


def show_window(window: MessagingWindow) -> None:
    """One line on the window: a caption while free text is fine, a warning or refusal otherwise."""
    if window.state is WindowState.OPEN:
        st.caption(f"🟢 {window.reason}")
    elif window.state is WindowState.NO_WINDOW:
        st.caption(window.reason)
    elif window.state is WindowState.HUMAN_AGENT:
        st.warning(f"🏷️ {window.reason}")
    elif window.state is WindowState.TEMPLATE_REQUIRED:
        st.info(f"🔒 {window.reason}")
    else:
        st.error(f"⛔ {window.reason}")


def _slot_label(key: str) -> str:
    kind, _, index = key.partition(":")
    return _SLOT_LABEL.get(kind, f"Button {int(index) + 1} link" if index.isdigit() else key)


def _sendable(template: TemplateView) -> bool:
    try:
        template.slots  # noqa: B018 - a template with a media header has no text slots we can fill
    except SwitchboardError:
        return False
    return True


def pick_template(templates: Sequence[TemplateView], key: str) -> tuple[TemplateView, dict[str, list[str]]] | None:
    """Template select box, one input per parameter (the template's example as placeholder) and the
    rendered preview; None when the channel has no approved template to offer."""
    usable = [t for t in templates if _sendable(t)]
    if not usable:
        st.warning("This channel has no approved templates yet: an admin can sync them on Channels & health.")
        return None
    chosen = st.selectbox("Template", usable, format_func=lambda t: t.label, key=f"{key}_template")
    assert chosen is not None
    parameters: dict[str, list[str]] = {}
    shown: dict[str, list[str]] = {}
    for slot in chosen.slots:
        values = []
        for n in range(1, slot.count + 1):
            example = slot.examples[n - 1] if n <= len(slot.examples) else ""
            values.append(st.text_input(f"{_slot_label(slot.key)} {{{{{n}}}}}", key=f"{key}_{chosen.id}_{slot.key}_{n}",
                                        placeholder=example or f"value for {{{{{n}}}}}"))
        parameters[slot.key] = values
        shown[slot.key] = [v or f"{{{{{n}}}}}" for n, v in enumerate(values, 1)]
    st.caption("Preview: what the customer will read")
    st.text(render(chosen.components, shown))
    return chosen, parameters


def _template_form(actor: Actor, conversation_id: int) -> None:
    try:
        templates = call(list_templates, actor, conversation_id)
    except SwitchboardError as exc:
        st.error(str(exc))
        return
    picked = pick_template(templates, key=f"tpl_{conversation_id}")
    idem_key = f"tpl_idem_{conversation_id}"
    if idem_key not in st.session_state:
        st.session_state[idem_key] = uuid.uuid4().hex
    if picked is None or not st.button("Send template", type="primary", key=f"send_tpl_{conversation_id}"):
        return
    template, parameters = picked
    try:
        call(enqueue_template, actor, conversation_id, template.id, parameters,
             idempotency_key=st.session_state[idem_key])
    except SwitchboardError as exc:
        st.error(f"Not sent: {exc}")
        return
    st.session_state[idem_key] = uuid.uuid4().hex
    list_state.changed()
    st.success(f"Template {template.label} queued.")


def reply_options(actor: Actor, conversation_id: int) -> bool:
    """The reply box's window part: shows the window; True when free text may be typed. Outside the
    window WhatsApp offers its approved templates here; Messenger/Instagram after 7 days offer nothing."""
    try:
        window = call(outbox.conversation_window, actor, conversation_id)
    except SwitchboardError as exc:
        st.warning(str(exc))
        return False
    show_window(window)
    if window.free_text_allowed:
        return True
    if window.templates_allowed:
        _template_form(actor, conversation_id)
    return False
