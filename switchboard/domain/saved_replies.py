"""Saved replies: which placeholders a body may use, and how they are filled (pure, no I/O).

A body names placeholders in braces: ``Hi {first_name}, thanks for writing!``. The known ones are
:data:`PLACEHOLDERS`; a literal brace is doubled (``{{`` / ``}}``). Anything else in braces (an unknown
name, a format spec, ``{}``) is refused when the reply is saved, so inserting it never fails.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from switchboard.errors import InvalidInput

PLACEHOLDERS: Mapping[str, str] = {
    "name": "the customer's name (or “there” when the platform gave none)",
    "first_name": "the first word of the customer's name (or “there”)",
    "agent_name": "the name of the agent inserting the reply",
}
NAME_FALLBACK = "there"
CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_TITLE = 200
MAX_BODY = 4096


def placeholders_in(body: str) -> list[str]:
    """The placeholder names of ``body`` in order; InvalidInput naming the first bad one."""
    try:
        parsed = list(string.Formatter().parse(body))
    except ValueError as exc:
        raise InvalidInput(f"the reply's braces do not match ({exc}); write a literal brace as {{{{ or }}}}"
                           ) from None
    names: list[str] = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise InvalidInput(f"unknown placeholder {shown}; use one of {known} (a literal brace is {{{{ or }}}})")
        names.append(field)
    return names


@dataclass(frozen=True, slots=True)
class SavedReplyText:
    code: str
    title: str
    body: str


def clean_saved_reply(code: str, title: str, body: str) -> SavedReplyText:
    """The saved reply as stored (code lower-cased and trimmed), or InvalidInput saying what is wrong."""
    code = (code or "").strip().lower().lstrip("/")
    if not CODE_RE.match(code):
        raise InvalidInput("the short code must be 1-64 characters: letters, digits, '-' or '_', "
                           "starting with a letter or digit (e.g. 'thanks')")
    title = (title or "").strip()
    if not title:
        raise InvalidInput("the title is empty")
    if len(title) > MAX_TITLE:
        raise InvalidInput(f"the title is {len(title)} characters long; the limit is {MAX_TITLE}")
    if not body or not body.strip():
        raise InvalidInput("the reply text is empty")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"the reply text is {len(body)} characters long; the limit is {MAX_BODY}")
    placeholders_in(body)
    return SavedReplyText(code, title, body)


def fill(body: str, *, contact_name: str | None, agent_name: str | None) -> str:
    """The body with its placeholders filled in."""
    name = (contact_name or "").strip() or NAME_FALLBACK
    values = {"name": name, "first_name": name.split()[0], "agent_name": (agent_name or "").strip()}
    return body.format_map({p: values[p] for p in placeholders_in(body)})
