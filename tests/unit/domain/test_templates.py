"""Template parameters, pure: slots per component, the checks, the preview and the Cloud API object."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.domain.templates import (
    Slot,
    check_parameters,
    cloud_api_template,
    placeholders,
    render,
    sent_parameter_counts,
    slots,
)
from switchboard.errors import InvalidInput

ORDER: list[dict[str, Any]] = [
    {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["#1042"]}},
    {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships {{3}}. Thanks, {{1}}!",
     "example": {"body_text": [["Ana", "#1042", "today"]]}},
    {"type": "FOOTER", "text": "Reply STOP to opt out"},
    {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "OK"},
                                    {"type": "URL", "text": "Track", "url": "https://x.test/t/{{1}}",
                                     "example": ["https://x.test/t/1042"]}]},
]
PARAMS = {"header": ["#7"], "body": ["Bo", "#7", "tomorrow"], "button:1": ["7"]}


def test_slots_count_distinct_placeholders_with_their_examples() -> None:
    assert placeholders("{{1}} and {{ 2 }} and {{1}}") == 2 and placeholders(None) == 0
    assert slots(ORDER) == [Slot("header", 1, ("#1042",)), Slot("body", 3, ("Ana", "#1042", "today")),
                            Slot("button:1", 1, ("https://x.test/t/1042",))]
    assert slots([{"type": "BODY", "text": "No parameters"}]) == []
    with pytest.raises(InvalidInput, match="image header"):
        slots([{"type": "HEADER", "format": "IMAGE"}])


def test_parameters_must_fill_every_slot_exactly() -> None:
    assert check_parameters(ORDER, PARAMS) == PARAMS
    for bad, why in (({**PARAMS, "body": ["Bo", "#7"]}, "body takes 3 parameters, 2 given"),
                     ({k: v for k, v in PARAMS.items() if k != "header"}, "header takes 1 parameter, 0 given"),
                     ({**PARAMS, "button:0": ["x"]}, "no button:0 parameters"),
                     ({**PARAMS, "header": ["  "]}, "parameter {{1}} of the header is empty"),
                     ({**PARAMS, "button:1": ["x" * 1025]}, "longer than 1024")):
        with pytest.raises(InvalidInput, match=why.replace("{", r"\{").replace("}", r"\}")):
            check_parameters(ORDER, bad)


def test_preview_and_cloud_api_object() -> None:
    assert render(ORDER, PARAMS) == "Order #7\nHi Bo, your order #7 ships tomorrow. Thanks, Bo!\nReply STOP to opt out"
    sent = cloud_api_template("order_update", "en_US", ORDER, PARAMS)
    assert sent == {"name": "order_update", "language": {"code": "en_US"}, "components": [
        {"type": "header", "parameters": [{"type": "text", "text": "#7"}]},
        {"type": "body", "parameters": [{"type": "text", "text": t} for t in ("Bo", "#7", "tomorrow")]},
        {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "7"}]}]}
    assert sent_parameter_counts(sent) == {"header": 1, "body": 3, "button:1": 1}
