"""Contacts: the customers, unique per (organization, provider, provider contact id)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.db.schema import Contact
from switchboard.types import ContactRef
from switchboard.uow import UnitOfWork

CONTACTS = cast(Table, Contact.__table__)


@dataclass(frozen=True, slots=True)
class ContactSighting:
    """One contact seen in a batch: its latest known profile and when it was seen."""

    ref: ContactRef
    first_at: datetime
    last_at: datetime


def merge_sightings(items: Iterable[tuple[ContactRef, datetime]]) -> dict[str, ContactSighting]:
    """Fold many (ref, time) pairs into one sighting per provider contact id (latest profile wins)."""
    out: dict[str, ContactSighting] = {}
    for ref, at in items:
        prev = out.get(ref.provider_contact_id)
        if prev is None:
            out[ref.provider_contact_id] = ContactSighting(ref, at, at)
            continue
        newer = at >= prev.last_at
        best = ref if newer else prev.ref
        merged = ContactRef(
            best.provider_contact_id,
            best.display_name or (prev.ref.display_name if newer else ref.display_name),
            best.username or (prev.ref.username if newer else ref.username),
            best.phone or (prev.ref.phone if newer else ref.phone),
            {**(prev.ref.metadata if newer else ref.metadata), **best.metadata},
        )
        out[ref.provider_contact_id] = ContactSighting(merged, min(prev.first_at, at), max(prev.last_at, at))
    return out


def upsert_contacts(
    uow: UnitOfWork, *, organization_id: int, provider: str, sightings: dict[str, ContactSighting]
) -> dict[str, int]:
    """Insert or refresh contacts in one batched statement; returns provider contact id -> contact id.

    Existing profile fields are only overwritten by non-empty values; first/last seen only widen.
    Rows are written in a stable order so concurrent batches cannot deadlock on them.
    """
    if not sightings:
        return {}
    rows: list[dict[str, Any]] = [
        {
            "organization_id": organization_id,
            "provider": provider,
            "provider_contact_id": pcid,
            "display_name": (s.ref.display_name or None) and s.ref.display_name[:300],
            "username": (s.ref.username or None) and s.ref.username[:200],
            "phone": (s.ref.phone or None) and s.ref.phone[:64],
            "first_seen_at": s.first_at,
            "last_seen_at": s.last_at,
            "metadata": s.ref.metadata,
        }
        for pcid, s in sorted(sightings.items())
    ]
    stmt = pg_insert(CONTACTS)
    ex = stmt.excluded
    c = CONTACTS.c
    upsert = stmt.on_conflict_do_update(
        index_elements=[c.organization_id, c.provider, c.provider_contact_id],
        set_={
            "display_name": func.coalesce(ex.display_name, c.display_name),
            "username": func.coalesce(ex.username, c.username),
            "phone": func.coalesce(ex.phone, c.phone),
            "first_seen_at": func.least(c.first_seen_at, ex.first_seen_at),
            "last_seen_at": func.greatest(c.last_seen_at, ex.last_seen_at),
            "metadata": c.metadata.op("||")(ex.metadata),
        },
    ).returning(c.id, c.provider_contact_id)
    result = uow.session.execute(upsert, rows)
    return {str(r.provider_contact_id): int(r.id) for r in result}
