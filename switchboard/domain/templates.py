"""Message templates, pure: which ``{{n}}`` parameters a template has, checking the values an agent
filled in, the rendered preview and the Cloud API ``template`` object to send.

A template's components are kept as the platform lists them (WhatsApp ``message_templates``)::

    [{"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
     {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships {{3}}.", "example": {...}},
     {"type": "FOOTER", "text": "Reply STOP to opt out"},
     {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://x.test/{{1}}"}]}]

Parameters are given per slot: ``{"header": [...], "body": [...], "button:0": [...]}`` (the button's
index among the template's buttons). Only positional ``{{n}}`` parameters and text headers are
supported; a template with a media header is refused (it needs a media parameter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from switchboard.errors import InvalidInput

PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
MAX_PARAMETER_CHARS = 1024
APPROVED = "APPROVED"


@dataclass(frozen=True, slots=True)
class Slot:
    """One component that takes parameters: ``header``, ``body`` or ``button:N``; how many; examples."""

    key: str
    count: int
    examples: tuple[str, ...] = ()


def placeholders(text: str | None) -> int:
    """How many distinct ``{{n}}`` parameters ``text`` has."""
    return len(set(PLACEHOLDER.findall(text or "")))


def _examples(component: Mapping[str, Any], field: str) -> tuple[str, ...]:
    example = component.get("example")
    if not isinstance(example, dict):
        return ()
    value = example.get(field)
    if isinstance(value, list) and value and isinstance(value[0], list):  # body_text: [["a", "b"]]
        value = value[0]
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _kind(component: Mapping[str, Any]) -> str:
    return str(component.get("type") or "").upper()


def slots(components: Sequence[Mapping[str, Any]]) -> list[Slot]:
    """The template's parameter slots, in the order the platform expects them."""
    out: list[Slot] = []
    for c in components:
        kind = _kind(c)
        if kind == "HEADER":
            fmt = str(c.get("format") or "TEXT").upper()
            if fmt != "TEXT":
                raise InvalidInput(f"templates with a {fmt.lower()} header are not supported yet")
            if count := placeholders(c.get("text")):
                out.append(Slot("header", count, _examples(c, "header_text")))
        elif kind == "BODY":
            if count := placeholders(c.get("text")):
                out.append(Slot("body", count, _examples(c, "body_text")))
        elif kind == "BUTTONS":
            for i, button in enumerate(c.get("buttons") or []):
                if isinstance(button, dict) and (count := placeholders(button.get("url"))):
                    out.append(Slot(f"button:{i}", count, tuple(str(e) for e in button.get("example") or [])))
    return out


def check_parameters(components: Sequence[Mapping[str, Any]], parameters: Mapping[str, Sequence[str]]
                     ) -> dict[str, list[str]]:
    """The parameters, cleaned, when they fill every slot exactly; InvalidInput saying what is wrong."""
    expected = {s.key: s.count for s in slots(components)}
    unknown = sorted(set(parameters) - set(expected))
    if unknown:
        raise InvalidInput(f"the template has no {', '.join(unknown)} parameters")
    out: dict[str, list[str]] = {}
    for key, count in expected.items():
        values = [str(v) for v in parameters.get(key, ())]
        if len(values) != count:
            raise InvalidInput(f"the template's {key.replace(':', ' ')} takes {count} parameter"
                               f"{'s' if count != 1 else ''}, {len(values)} given")
        for n, value in enumerate(values, 1):
            if not value.strip():
                raise InvalidInput(f"parameter {{{{{n}}}}} of the {key.replace(':', ' ')} is empty")
            if len(value) > MAX_PARAMETER_CHARS:
                raise InvalidInput(f"parameter {{{{{n}}}}} of the {key.replace(':', ' ')} is longer than "
                                   f"{MAX_PARAMETER_CHARS} characters")
        out[key] = values
    return out


def _fill(text: str, values: Sequence[str]) -> str:
    def one(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return values[n - 1] if 0 < n <= len(values) else m.group(0)

    return PLACEHOLDER.sub(one, text)


def render(components: Sequence[Mapping[str, Any]], parameters: Mapping[str, Sequence[str]]) -> str:
    """The text the customer will read: header, body and footer with the parameters filled in."""
    lines: list[str] = []
    for c in components:
        kind = _kind(c)
        text = c.get("text")
        if kind in ("HEADER", "BODY", "FOOTER") and isinstance(text, str) and text:
            lines.append(_fill(text, parameters.get(kind.lower(), ())))
    return "\n".join(lines)


def _text_parameters(values: Sequence[str]) -> list[dict[str, str]]:
    return [{"type": "text", "text": v} for v in values]


def cloud_api_template(name: str, language: str, components: Sequence[Mapping[str, Any]],
                       parameters: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The Cloud API ``template`` object of a send: name, language and the parameters per component."""
    sent: list[dict[str, Any]] = []
    for key, values in parameters.items():
        if key in ("header", "body"):
            sent.append({"type": key, "parameters": _text_parameters(values)})
        else:
            index = int(key.split(":", 1)[1])
            sent.append({"type": "button", "sub_type": "url", "index": str(index),
                         "parameters": _text_parameters(values)})
    return {"name": name, "language": {"code": language}, "components": sent}


def sent_parameter_counts(template: Mapping[str, Any]) -> dict[str, int]:
    """How many parameters a Cloud API ``template`` object carries per slot (what the platform
    compares with the template's own ``{{n}}``)."""
    out: dict[str, int] = {}
    for c in template.get("components") or []:
        if not isinstance(c, dict):
            continue
        kind = str(c.get("type") or "").lower()
        key = f"button:{c.get('index')}" if kind == "button" else kind
        out[key] = len(c.get("parameters") or [])
    return out
