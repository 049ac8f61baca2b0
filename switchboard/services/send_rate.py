"""Each channel's send rate, shared by every worker process (held in PostgreSQL, not in one process).

The limiter is GCRA (the generic cell rate algorithm) without burst tolerance: a channel's row holds
the *theoretical arrival time* (``tat``) of its next send. A send may go when ``tat <= now``; taking it
moves ``tat`` to ``max(tat, now) + 1/rate``. Both happen in one ``INSERT … ON CONFLICT DO UPDATE …
WHERE … RETURNING`` (the row lock serialises the workers), so all workers together send at most
``rate`` per second and never more than ``rate`` in any one-second window: sends are spaced at least
``1/rate`` apart, there is no burst. A refused send is told how long until its slot; nobody sleeps here.

``PACING`` keeps the spacing a little wider than the limit so that network jitter between our
worker and the platform cannot make the platform see more than ``rate`` in one second.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.db.schema import ChannelSendRate
from switchboard.uow import UnitOfWork

RATES = cast(Table, ChannelSendRate.__table__)
PACING = 0.98  # sends are spaced 1 / (0.98 × rate) apart: 2 % headroom for jitter on the way


def send_interval(rate: float) -> float:
    """Seconds between two sends of a channel limited to ``rate`` per second."""
    if not rate > 0:
        raise ValueError(f"rate limit must be more than 0 per second, not {rate}")
    return 1.0 / (float(rate) * PACING)


def take_send_slot(uow: UnitOfWork, channel_id: int, rate: float, now: datetime) -> float:
    """Take the channel's next send slot and return 0.0, or take nothing and return the seconds until the
    next slot is due. One statement; the caller commits (the slot is taken when it commits)."""
    step = timedelta(seconds=send_interval(rate))
    ins = pg_insert(RATES).values(channel_id=channel_id, tat=now + step)
    granted = uow.session.execute(
        ins.on_conflict_do_update(index_elements=[RATES.c.channel_id],
                                  set_={"tat": func.greatest(RATES.c.tat, now) + step},
                                  where=RATES.c.tat <= now)
        .returning(RATES.c.tat)
    ).first()
    if granted is not None:
        return 0.0
    tat = uow.session.execute(select(RATES.c.tat).where(RATES.c.channel_id == channel_id)).scalar_one()
    return max(0.0, (tat - now).total_seconds())
