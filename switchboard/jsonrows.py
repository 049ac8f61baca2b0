"""JSON text for the batched statements' one-document parameters (``json_to_recordset(:rows)``).

orjson writes the JSON of a batch of 500 deliveries at about a twentieth of the cost of
``json.dumps`` (which was a fifth of the webhook worker's CPU). What orjson refuses (an integer
beyond 64 bits, a dict key that is not a string: possible in a platform's raw payload) takes the
standard library's path instead, so a batch never fails for its encoding.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson


def to_json(value: Any) -> str:
    """``value`` as compact JSON text: datetimes as ISO 8601 with their offset (as ``isoformat()``
    writes them), ``str()`` of anything JSON has no type for."""
    try:
        return orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=_text, ensure_ascii=False, separators=(",", ":"))


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
