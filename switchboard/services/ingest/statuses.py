"""Apply what happened to stored messages: delivery statuses, read watermarks, edits and deletions.

Statuses are applied in bulk (one locking read, one update, one insert of events per batch) and only
move forward (:func:`~switchboard.domain.conversation.can_advance`): applied in time order whatever
order they arrive in, a late DELIVERED after READ changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from switchboard.domain.conversation import STATUS_RANK, Direction, MessageStatus, can_advance, preview_of
from switchboard.services.events import NewEvent, append_events
from switchboard.services.ingest import statements as sql
from switchboard.services.ingest.result import Tally
from switchboard.services.ingest.validation import STATUS_EVENT
from switchboard.types import MessageDeletion, MessageEdit, ReadWatermark, StatusUpdate
from switchboard.uow import UnitOfWork


@dataclass
class _Progress:
    """One message's status while the batch's statuses are applied in time order."""

    id: int
    status: str
    delivered_at: datetime | None
    read_at: datetime | None
    at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None


def _order(s: StatusUpdate) -> tuple[datetime, int]:
    return s.occurred_at, STATUS_RANK.get(s.status, 9)


def apply_statuses(uow: UnitOfWork, channel_id: int, statuses: Sequence[StatusUpdate], tally: Tally) -> None:
    ids = sorted({s.provider_message_id for s in statuses})
    rows = {str(r.provider_message_id): r for r in uow.session.execute(sql.LOCK_STATUS_TARGETS, {
        "channel": channel_id, "ids": sql.ids_json(ids)})}
    progress: dict[str, _Progress] = {}
    events: list[NewEvent] = []
    for s in sorted(statuses, key=_order):
        row = rows.get(s.provider_message_id)
        if row is None or row.direction != Direction.OUTBOUND:
            tally.counts["statuses_ignored"] += 1
            if row is None and s.provider_message_id not in tally.unmatched_status_ids:
                tally.unmatched_status_ids.append(s.provider_message_id)
            continue
        p = progress.setdefault(s.provider_message_id,
                                _Progress(int(row.id), row.status, row.delivered_at, row.read_at))
        if not can_advance(p.status, s.status):
            tally.counts["statuses_ignored"] += 1
            continue
        p.status, p.at = s.status, s.occurred_at
        if s.status in (MessageStatus.DELIVERED, MessageStatus.READ) and p.delivered_at is None:
            p.delivered_at = s.occurred_at
        if s.status == MessageStatus.READ and p.read_at is None:
            p.read_at = s.occurred_at
        data: dict[str, Any] = {}
        if s.status == MessageStatus.FAILED:
            p.error_code = s.error_code
            p.error_message = s.error_message or "the platform reported the message as failed"
            data = {"error_code": s.error_code, "error_message": p.error_message}
        tally.counts["statuses_applied"] += 1
        events.append(NewEvent(row.organization_id, row.conversation_id, STATUS_EVENT[s.status].value,
                               s.occurred_at, message_id=p.id, data=data))
    changed = [vars(p) for p in progress.values() if p.at is not None]
    if changed:
        uow.session.execute(sql.UPDATE_STATUSES, {"rows": sql.rows_json(changed)})
    append_events(uow, events)


def apply_watermark(uow: UnitOfWork, organization_id: int, channel_id: int, provider: str, mark: ReadWatermark,
                    tally: Tally) -> None:
    """Every outbound message sent up to the watermark becomes DELIVERED/READ (Messenger, Instagram)."""
    who = {"channel": channel_id, "org": organization_id, "provider": provider,
           "contact": mark.provider_contact_id}
    conv = uow.session.execute(sql.WATERMARK_CONVERSATION, who).scalar()
    if conv is None:
        tally.counts["statuses_ignored"] += 1
        return
    lower = [MessageStatus.SENT.value]
    if mark.status == MessageStatus.READ:
        lower.append(MessageStatus.DELIVERED.value)
    ids = [int(i) for i in uow.session.execute(sql.WATERMARK_TARGETS, {
        "conversation": conv, "watermark": mark.watermark, "lower": lower}).scalars()]
    if not ids:
        return
    uow.session.execute(sql.APPLY_WATERMARK, {"status": mark.status, "at": mark.occurred_at, "ids": ids})
    tally.counts["statuses_applied"] += len(ids)
    append_events(uow, [NewEvent(organization_id, int(conv), STATUS_EVENT[mark.status].value, mark.occurred_at,
                                 message_id=mid, data={"watermark": mark.watermark.isoformat()})
                        for mid in ids])


def apply_change(uow: UnitOfWork, channel_id: int, change: MessageEdit | MessageDeletion, tally: Tally) -> None:
    """An edit or a deletion: the message changes, and the preview too if it is the latest message."""
    params: dict[str, Any] = {"channel": channel_id, "pmid": change.provider_message_id}
    if isinstance(change, MessageEdit):
        stmt, extra = sql.EDIT_MESSAGE, {"edit": {"edited_at": change.edited_at.isoformat(), "raw": change.raw}}
        params["body"] = change.new_body
    else:
        stmt, extra = sql.DELETE_MESSAGE, {"deletion": {"deleted_at": change.deleted_at.isoformat(),
                                                         "raw": change.raw}}
    params["extra"] = json.dumps(extra, default=str, ensure_ascii=False)
    row = uow.session.execute(stmt, params).first()
    if row is None:
        tally.counts["ignored"] += 1  # a change of a message not stored
        return
    if isinstance(change, MessageEdit):
        tally.counts["edits"] += 1
        preview = preview_of(change.new_body, row.content_type)
    else:
        tally.counts["deletions"] += 1
        preview = "[message deleted]"
    uow.session.execute(sql.TOUCH_PREVIEW, {"preview": preview, "conversation": row.conversation_id,
                                            "sent_at": row.sent_at})
