"""Check and sort the parsed items of a batch before anything is written.

Everything a connector handed over is checked here (ids present, timestamps with a timezone, known
directions and statuses), so a bad item refuses the whole batch with :class:`InvalidInput` before the
first statement runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from switchboard.domain.conversation import Direction, EventType, MessageStatus
from switchboard.errors import InvalidInput
from switchboard.types import (
    Ignored,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    ReadWatermark,
    StatusUpdate,
)
from switchboard.types import ParsedItem as Item

# the conversation event each reported status writes
STATUS_EVENT: dict[str, EventType] = {
    MessageStatus.SENT: EventType.MESSAGE_SENT,
    MessageStatus.DELIVERED: EventType.MESSAGE_DELIVERED,
    MessageStatus.READ: EventType.MESSAGE_READ,
    MessageStatus.FAILED: EventType.MESSAGE_FAILED,
}


@dataclass
class SortedItems:
    """A batch's items by kind, checked. ``messages`` holds each provider message id once."""

    messages: dict[str, InboundMessage] = field(default_factory=dict)
    repeated: int = 0  # messages given more than once in the batch (counted as duplicates)
    statuses: list[StatusUpdate] = field(default_factory=list)  # including those of watermarks
    watermarks: list[ReadWatermark] = field(default_factory=list)
    changes: list[MessageEdit | MessageDeletion] = field(default_factory=list)  # in batch order
    ignored: int = 0


def check_aware(at: datetime, what: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"{what}: timestamp {at.isoformat()} has no timezone")


def sort_items(items: Sequence[Item]) -> SortedItems:
    """Check every item and sort them by kind (raises InvalidInput for the first bad one)."""
    out = SortedItems()
    for item in items:
        if isinstance(item, InboundMessage):
            _check_message(item)
            if item.provider_message_id in out.messages:
                out.repeated += 1
            else:
                out.messages[item.provider_message_id] = item
        elif isinstance(item, StatusUpdate):
            _check_status(item)
            out.statuses.append(item)
        elif isinstance(item, ReadWatermark):
            check_aware(item.watermark, "read watermark")
            check_aware(item.occurred_at, "read watermark")
            out.watermarks.append(item)
            out.statuses.extend(StatusUpdate(pmid, item.status, item.occurred_at)
                                for pmid in item.provider_message_ids)
        elif isinstance(item, MessageEdit | MessageDeletion):
            out.changes.append(item)
        elif isinstance(item, Ignored):
            out.ignored += 1
        else:
            raise InvalidInput(f"cannot ingest an item of type {type(item).__name__}")
    return out


def _check_message(m: InboundMessage) -> None:
    if not m.provider_message_id:
        raise InvalidInput("an inbound message has no provider message id")
    if not m.contact.provider_contact_id:
        raise InvalidInput(f"message {m.provider_message_id} has no contact id")
    check_aware(m.sent_at, f"message {m.provider_message_id}")
    if m.direction not in (Direction.INBOUND, Direction.OUTBOUND):
        raise InvalidInput(f"message {m.provider_message_id}: direction {m.direction!r}")


def _check_status(s: StatusUpdate) -> None:
    check_aware(s.occurred_at, f"status of {s.provider_message_id}")
    if s.status not in STATUS_EVENT:
        raise InvalidInput(f"status {s.status!r} of {s.provider_message_id} is not one of "
                           f"{', '.join(STATUS_EVENT)}")
