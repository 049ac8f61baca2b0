"""What a batch did: counted while it is written (:class:`Tally`), returned as :class:`IngestResult`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class IngestResult:
    messages_created: int = 0
    messages_duplicate: int = 0
    messages_erased: int = 0  # dropped: an erased message, or an erased sender's message from before the erasure
    statuses_applied: int = 0
    statuses_ignored: int = 0
    edits: int = 0
    deletions: int = 0
    conversations_created: int = 0
    conversations_reopened: int = 0
    ignored: int = 0
    # provider ids of status updates whose message is not (yet) known: a processor may retry them later
    unmatched_status_ids: tuple[str, ...] = ()
    conversation_ids: tuple[int, ...] = ()  # conversations that received new messages
    message_ids: tuple[int, ...] = ()  # messages created by this batch


@dataclass
class Tally:
    """The counts of a batch in progress, keyed by the names of :class:`IngestResult`'s count fields."""

    counts: Counter[str] = field(default_factory=Counter)
    unmatched_status_ids: list[str] = field(default_factory=list)
    conversation_ids: list[int] = field(default_factory=list)
    message_ids: list[int] = field(default_factory=list)

    def result(self) -> IngestResult:
        return IngestResult(**self.counts, unmatched_status_ids=tuple(self.unmatched_status_ids),
                            conversation_ids=tuple(self.conversation_ids), message_ids=tuple(self.message_ids))
