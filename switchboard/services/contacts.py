"""Contacts: the customers, unique per (organization, provider, provider contact id)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, text

from switchboard.db.schema import Contact
from switchboard.jsonrows import to_json
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


_UPSERT = text("""
    insert into contacts (organization_id, provider, provider_contact_id, display_name, username, phone,
                          first_seen_at, last_seen_at, metadata)
    select :org, :provider, r.pcid, r.display_name, r.username, r.phone, r.first_at, r.last_at, r.metadata
    from json_to_recordset(cast(:rows as json)) as r(
        pcid text, display_name text, username text, phone text, first_at timestamptz, last_at timestamptz,
        metadata jsonb)
    on conflict (organization_id, provider, provider_contact_id) do update set
        display_name = coalesce(excluded.display_name, contacts.display_name),
        username = coalesce(excluded.username, contacts.username),
        phone = coalesce(excluded.phone, contacts.phone),
        first_seen_at = least(contacts.first_seen_at, excluded.first_seen_at),
        last_seen_at = greatest(contacts.last_seen_at, excluded.last_seen_at),
        metadata = contacts.metadata || excluded.metadata
    returning id, provider_contact_id
""")


def upsert_contacts(
    uow: UnitOfWork, *, organization_id: int, provider: str, sightings: dict[str, ContactSighting]
) -> dict[str, int]:
    """Insert or refresh contacts in one batched statement; returns provider contact id -> contact id.

    Existing profile fields are only overwritten by non-empty values; first/last seen only widen.
    Rows are written in a stable order so concurrent batches cannot deadlock on them.
    """
    if not sightings:
        return {}
    # one JSON document read by field name (json_to_recordset parses each row once; orjson writes it)
    rows = [{"pcid": pcid, "display_name": (sg.ref.display_name or None) and sg.ref.display_name[:300],
             "username": (sg.ref.username or None) and sg.ref.username[:200],
             "phone": (sg.ref.phone or None) and sg.ref.phone[:64],
             "first_at": sg.first_at, "last_at": sg.last_at, "metadata": sg.ref.metadata or {}}
            for pcid, sg in sorted(sightings.items())]
    result = uow.session.execute(_UPSERT, {"org": organization_id, "provider": provider, "rows": to_json(rows)})
    return {pcid: cid for cid, pcid in result.all()}  # fetched at once, unpacked by position
