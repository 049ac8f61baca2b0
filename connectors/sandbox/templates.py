"""The sandbox's message template catalogue, and how it checks a template send like the Cloud API.

``GET /{version}/{waba_id}/message_templates`` lists :data:`DEFAULT_TEMPLATES` (or the config's own)
in the Graph shape with cursor paging. A ``type: template`` send is refused like the platform refuses it:

* an unknown template (name + language), or one that is not ``APPROVED``: error **132001**
  ("Template name does not exist in the translation");
* a component with a different number of parameters than the template's ``{{n}}``: error **132000**
  ("Number of parameters does not match the expected number of params").

Deliberately written apart from Switchboard's own template rules (``switchboard.domain.templates``):
the sandbox plays the platform, so a mistake there must not be mirrored here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_PARAM = re.compile(r"\{\{\s*(\d+)\s*\}\}")

DEFAULT_TEMPLATES: tuple[dict[str, Any], ...] = (
    {"id": "910000000000001", "name": "hello_world", "language": "en_US", "status": "APPROVED",
     "category": "UTILITY",
     "components": [{"type": "BODY", "text": "Hello! Thanks for getting in touch. How can we help you today?"}]},
    {"id": "910000000000002", "name": "follow_up", "language": "en_US", "status": "APPROVED",
     "category": "UTILITY",
     "components": [{"type": "BODY", "text": "Hi {{1}}, we are following up on your request. Reply to this "
                                             "message to continue the conversation.",
                     "example": {"body_text": [["Ana"]]}}]},
    {"id": "910000000000003", "name": "order_update", "language": "en_US", "status": "APPROVED",
     "category": "UTILITY",
     "components": [
         {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["#10234"]}},
         {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships {{3}}.",
          "example": {"body_text": [["Ana", "#10234", "today"]]}},
         {"type": "FOOTER", "text": "Reply STOP to opt out"},
         {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://shop.example/t/{{1}}",
                                          "example": ["https://shop.example/t/10234"]}]}]},
    {"id": "910000000000004", "name": "appointment_reminder", "language": "de", "status": "APPROVED",
     "category": "UTILITY",
     "components": [{"type": "BODY", "text": "Hallo {{1}}, wir erinnern Sie an Ihren Termin am {{2}}.",
                     "example": {"body_text": [["Ana", "3. März, 10:00"]]}}]},
    {"id": "910000000000005", "name": "spring_sale", "language": "en_US", "status": "PENDING",
     "category": "MARKETING",
     "components": [{"type": "BODY", "text": "Spring sale: {{1}} off everything this week!",
                     "example": {"body_text": [["20%"]]}}]},
    {"id": "910000000000006", "name": "crypto_offer", "language": "en_US", "status": "REJECTED",
     "category": "MARKETING", "rejected_reason": "PROMOTIONAL",
     "components": [{"type": "BODY", "text": "Double your money with {{1}}!"}]},
)


class TemplateRefused(Exception):
    """A template send the platform refuses: the Graph error code, title and details."""

    def __init__(self, code: int, title: str, details: str) -> None:
        super().__init__(f"({code}) {title}: {details}")
        self.code, self.title, self.details = code, title, details


def _expected(components: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """``{"header": n, "body": n, "button:0": n}``: how many parameters each part of a template takes."""
    out: dict[str, int] = {}
    for component in components:
        kind = str(component.get("type", "")).lower()
        if kind in ("header", "body"):
            out[kind] = len(set(_PARAM.findall(str(component.get("text") or ""))))
        elif kind == "buttons":
            for index, button in enumerate(component.get("buttons") or []):
                out[f"button:{index}"] = len(set(_PARAM.findall(str(button.get("url") or ""))))
    return {part: n for part, n in out.items() if n}


def _given(sent: Any) -> dict[str, list[str]]:
    given: dict[str, list[str]] = {}
    for component in sent if isinstance(sent, list) else []:
        if not isinstance(component, dict):
            continue
        kind = str(component.get("type", "")).lower()
        part = f"button:{component.get('index', 0)}" if kind == "button" else kind
        values = [str(p.get("text", "")) for p in component.get("parameters") or [] if isinstance(p, dict)]
        given[part] = values
    return given


def check_template_send(catalogue: Sequence[Mapping[str, Any]], template: Mapping[str, Any]) -> str:
    """The text the customer reads, or :class:`TemplateRefused` as the Cloud API would refuse the send."""
    name = str(template.get("name") or "")
    language = template.get("language")
    code = str(language.get("code") if isinstance(language, Mapping) else language or "")
    found = next((t for t in catalogue if t["name"] == name and t["language"] == code), None)
    if found is None or found.get("status") != "APPROVED":
        state = "does not exist" if found is None else f"is {str(found.get('status')).lower()}, not approved"
        raise TemplateRefused(132001, "Template name does not exist in the translation",
                              f"template name ({name}) {state} in {code or 'no language'}")
    expected, given = _expected(found["components"]), _given(template.get("components"))
    for part in sorted(set(expected) | set(given)):
        want, got = expected.get(part, 0), len(given.get(part, []))
        if want != got:
            raise TemplateRefused(132000, "Number of parameters does not match the expected number of params",
                                  f"{part}: number of localizable_params ({got}) does not match the expected "
                                  f"number of params ({want})")
    return "\n".join(_filled(str(c.get("text") or ""), given.get(str(c.get("type", "")).lower(), []))
                     for c in found["components"] if str(c.get("type", "")).lower() in ("header", "body", "footer"))


def _filled(text: str, values: Sequence[str]) -> str:
    out, last = [], 0
    for m in _PARAM.finditer(text):
        n = int(m.group(1))
        out += [text[last:m.start()], values[n - 1] if 0 < n <= len(values) else m.group(0)]
        last = m.end()
    return "".join(out) + text[last:]
