"""Organizations (workspaces): timezone, business hours, SLA targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import insert, select, update

from switchboard.db.schema import Organization
from switchboard.errors import InvalidInput, NotFound, PermissionDenied
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class OrganizationView:
    id: int
    name: str
    timezone: str
    business_hours: dict[str, Any]
    sla_first_response_ms: int
    sla_resolution_ms: int
    auto_assign: bool


def validate_business_hours(hours: dict[str, Any]) -> dict[str, Any]:
    """``{"mon": [["09:00", "17:00"]], ..., "holidays": ["2026-12-25"]}``; raises InvalidInput."""
    out: dict[str, Any] = {}
    for day, spans in hours.items():
        if day == "holidays":
            out[day] = [str(d) for d in spans]
            continue
        if day not in DAYS:
            raise InvalidInput(f"business hours: unknown day {day!r} (use {', '.join(DAYS)})")
        clean = []
        for span in spans:
            if not (isinstance(span, list | tuple) and len(span) == 2):
                raise InvalidInput(f"business hours for {day}: each span is [\"HH:MM\", \"HH:MM\"]")
            start, end = (str(s) for s in span)
            for t in (start, end):
                hh, _, mm = t.partition(":")
                if not (hh.isdigit() and mm.isdigit() and 0 <= int(hh) <= 24 and 0 <= int(mm) < 60):
                    raise InvalidInput(f"business hours for {day}: {t!r} is not HH:MM")
            if end <= start:
                raise InvalidInput(f"business hours for {day}: {start}-{end} ends before it starts")
            clean.append([start, end])
        out[day] = clean
    return out


def _check_tz(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown IANA timezone {tz!r} (e.g. Europe/Berlin)") from None
    return tz


def create_organization(
    uow: UnitOfWork,
    name: str,
    timezone: str = "UTC",
    business_hours: dict[str, Any] | None = None,
    *,
    sla_first_response_ms: int = 300_000,
    sla_resolution_ms: int = 86_400_000,
) -> int:
    """Create an organization, or return the existing one with that name (idempotent)."""
    name = name.strip()
    if not name:
        raise InvalidInput("organization name is empty")
    existing = uow.session.execute(select(Organization.id).where(Organization.name == name)).scalar()
    if existing is not None:
        return int(existing)
    org_id = uow.session.execute(
        insert(Organization)
        .values(
            name=name,
            timezone=_check_tz(timezone),
            business_hours=validate_business_hours(business_hours or {}),
            sla_first_response_ms=sla_first_response_ms,
            sla_resolution_ms=sla_resolution_ms,
        )
        .returning(Organization.id)
    ).scalar_one()
    uow.commit()
    return int(org_id)


def get_organization(uow: UnitOfWork, organization_id: int) -> OrganizationView:
    row = uow.session.get(Organization, organization_id)
    if row is None:
        raise NotFound(f"organization {organization_id} does not exist")
    return OrganizationView(row.id, row.name, row.timezone, row.business_hours, row.sla_first_response_ms,
                            row.sla_resolution_ms, row.auto_assign)


def update_organization(uow: UnitOfWork, organization_id: int, **changes: Any) -> OrganizationView:
    allowed = {"timezone", "business_hours", "sla_first_response_ms", "sla_resolution_ms", "auto_assign"}
    bad = set(changes) - allowed
    if bad:
        raise InvalidInput(f"cannot change {', '.join(sorted(bad))}")
    if "timezone" in changes:
        _check_tz(changes["timezone"])
    if "business_hours" in changes:
        changes["business_hours"] = validate_business_hours(changes["business_hours"])
    uow.session.execute(update(Organization).where(Organization.id == organization_id).values(**changes))
    uow.commit()
    return get_organization(uow, organization_id)


def auto_assign_organization_ids(uow: UnitOfWork) -> list[int]:
    """Organizations that turned auto-assignment on (the maintenance flow drains their backlog)."""
    return [int(i) for i in uow.session.execute(select(Organization.id).where(Organization.auto_assign)).scalars()]


def update_settings(uow: UnitOfWork, actor: Actor, **changes: Any) -> OrganizationView:
    """Admin: change the organization's timezone, business hours, SLA targets or auto-assignment."""
    from switchboard.auth.audit import record_audit

    if actor.role != "admin":
        raise PermissionDenied("only admins change organization settings")
    before = get_organization(uow, actor.organization_id)
    after = update_organization(uow, actor.organization_id, **changes)
    diff = {k: [getattr(before, k), getattr(after, k)] for k in changes if getattr(before, k) != getattr(after, k)}
    if diff:
        record_audit(uow, organization_id=actor.organization_id, actor_user_id=actor.user_id,
                     action="organization.updated", target=before.name, details=diff)
        uow.commit()
    return after
