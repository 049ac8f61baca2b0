"""Contacts: the customers, unique per (organization, provider, provider contact id)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, text

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


_UPSERT = text("""
    insert into contacts (organization_id, provider, provider_contact_id, display_name, username, phone,
                          first_seen_at, last_seen_at, metadata)
    select :org, :provider, v.pcid, v.dn, v.un, v.ph, v.first, v.last, cast(v.md as jsonb)
    from unnest(cast(:pcid as text[]), cast(:dn as text[]), cast(:un as text[]), cast(:ph as text[]),
                cast(:first as timestamptz[]), cast(:last as timestamptz[]), cast(:md as text[]))
         as v(pcid, dn, un, ph, first, last, md)
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
    items = sorted(sightings.items())
    result = uow.session.execute(_UPSERT, {
        "org": organization_id, "provider": provider,
        "pcid": [pcid for pcid, _ in items],
        "dn": [(s.ref.display_name or None) and s.ref.display_name[:300] for _, s in items],
        "un": [(s.ref.username or None) and s.ref.username[:200] for _, s in items],
        "ph": [(s.ref.phone or None) and s.ref.phone[:64] for _, s in items],
        "first": [s.first_at for _, s in items],
        "last": [s.last_at for _, s in items],
        "md": [json.dumps(s.ref.metadata or {}, default=str) for _, s in items],
    })
    return {str(r.provider_contact_id): int(r.id) for r in result}
