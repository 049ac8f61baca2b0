"""Admins: erase a customer's personal data from the inbox's customer profile (a privacy request).

One call from the inbox (:func:`erase_section`); the service (:mod:`switchboard.services.erasure`)
checks the policy again, anonymises and audits; the media files it releases are deleted after its
commit. Irreversible, so the button only works once "I understand" is ticked.
"""

from __future__ import annotations

import streamlit as st

from app.deps import call
from switchboard.errors import SwitchboardError
from switchboard.policy import Action, allows
from switchboard.services.erasure import erase_contact, remove_files
from switchboard.types import Actor


def erase_section(actor: Actor, contact_id: int) -> None:
    """The erase control of one contact's profile; nothing for anyone but admins."""
    if not allows(actor.role, Action.ERASE_CONTACTS):
        return
    st.caption(f"Contact id {contact_id} (operators: `switchboard contact erase {contact_id}`)")
    sure = st.checkbox("I understand: this customer's messages, files and profile are erased for good; "
                       "the conversations stay as anonymous records", key=f"erase_sure_{contact_id}")
    if st.button("Erase this customer's personal data", key=f"erase_{contact_id}", disabled=not sure):
        try:
            report = call(erase_contact, actor, contact_id)
        except SwitchboardError as exc:
            st.error(str(exc))
            return
        files = remove_files(report.files)
        st.success(f"Erased: {report.messages} message(s) emptied, {report.attachments} attachment(s) and {files} "
                   f"file(s) deleted. The customer is now shown as {report.pseudonym!r}.")
