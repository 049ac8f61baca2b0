"""Organizations (workspaces): timezone, business hours, SLA targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import insert, select, update

from switchboard.auth.audit import record_audit
from switchboard.db.schema import Organization
from switchboard.errors import Conflict, InvalidInput, NotFound
from switchboard.policy import Action, require, verify_actor
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
    retention_webhook_days: int = 30
    retention_webhook_failed_days: int = 180
    retention_runs_days: int = 90
    retention_signals_days: int = 7


# days the daily cleanup flow keeps each kind of row (docs/operations.md, "Retention")
RETENTION = ("retention_webhook_days", "retention_webhook_failed_days", "retention_runs_days",
             "retention_signals_days")
MAX_RETENTION_DAYS = 3650


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
    """Create an organization; Conflict if one with that name exists (look it up with
    :func:`organization_id_by_name`). Creating a workspace is an operator's act (CLI, demo, importer):
    it touches no existing organization, so it takes no actor."""
    name = name.strip()
    if not name:
        raise InvalidInput("organization name is empty")
    if _id_by_name(uow, name) is not None:
        raise Conflict(f"an organization named {name!r} already exists")
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
    return int(org_id)


def _id_by_name(uow: UnitOfWork, name: str) -> int | None:
    found = uow.session.execute(select(Organization.id).where(Organization.name == name.strip())).scalar()
    return None if found is None else int(found)


def organization_id_by_name(uow: UnitOfWork, name: str) -> int:
    """The id of the organization called ``name``; NotFound naming the existing ones otherwise."""
    found = _id_by_name(uow, name)
    if found is not None:
        return found
    names = list(uow.session.execute(select(Organization.name).order_by(Organization.name).limit(21)).scalars())
    if not names:
        raise NotFound(f"there is no organization named {name!r}; there is no organization yet")
    listed = ", ".join(repr(n) for n in names[:20]) + (", …" if len(names) > 20 else "")
    raise NotFound(f"there is no organization named {name!r}; the organizations are: {listed}")


def get_organization(uow: UnitOfWork, actor: Actor) -> OrganizationView:
    """The actor's organization (every member may read its calendar and targets)."""
    actor = verify_actor(uow, actor)
    row = uow.session.get(Organization, actor.organization_id)
    if row is None:
        raise NotFound(f"organization {actor.organization_id} does not exist")
    return OrganizationView(row.id, row.name, row.timezone, row.business_hours, row.sla_first_response_ms,
                            row.sla_resolution_ms, row.auto_assign,
                            *(int(getattr(row, name)) for name in RETENTION))


def auto_assign_organization_ids(uow: UnitOfWork) -> list[int]:
    """Organizations that turned auto-assignment on (the maintenance flow drains their backlog)."""
    return [int(i) for i in uow.session.execute(select(Organization.id).where(Organization.auto_assign)).scalars()]


SETTINGS = ("timezone", "business_hours", "sla_first_response_ms", "sla_resolution_ms", "auto_assign", *RETENTION)


def update_settings(uow: UnitOfWork, actor: Actor, **changes: Any) -> OrganizationView:
    """Admin: change the organization's timezone, business hours, SLA targets, auto-assignment or
    retention days; audited."""
    actor = require(uow, actor, Action.MANAGE_ORGANIZATION)
    bad = set(changes) - set(SETTINGS)
    if bad:
        raise InvalidInput(f"cannot change {', '.join(sorted(bad))}")
    if "timezone" in changes:
        _check_tz(changes["timezone"])
    if "business_hours" in changes:
        changes["business_hours"] = validate_business_hours(changes["business_hours"])
    for target in ("sla_first_response_ms", "sla_resolution_ms"):
        if target in changes and int(changes[target]) <= 0:
            raise InvalidInput(f"{target} must be a positive number of milliseconds")
    for name in RETENTION:
        if name in changes and not 1 <= int(changes[name]) <= MAX_RETENTION_DAYS:
            raise InvalidInput(f"{name.replace('_', ' ')} must be between 1 and {MAX_RETENTION_DAYS} days")
    before = get_organization(uow, actor)
    uow.session.execute(update(Organization).where(Organization.id == actor.organization_id).values(**changes))
    after = get_organization(uow, actor)
    diff = {k: [getattr(before, k), getattr(after, k)] for k in changes if getattr(before, k) != getattr(after, k)}
    if diff:
        record_audit(uow, organization_id=actor.organization_id, actor_user_id=actor.acting_user_id,
                     action="organization.updated", target=before.name, details=diff)
    return after
