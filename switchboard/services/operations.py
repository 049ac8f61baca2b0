"""Operator/admin read models: channels with health, webhook failures, flow runs (admins only)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute

from switchboard.db.schema import Channel, Message, Organization, User, WebhookEvent
from switchboard.errors import PermissionDenied
from switchboard.policy import Action, require
from switchboard.services import outbox, runs, webhooks
from switchboard.services.channels import ChannelView, list_channels
from switchboard.services.messages import MessageView
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class OperationsOverview:
    channels: list[ChannelView]
    webhook_backlog: int
    problem_deliveries: list[webhooks.WebhookEventView]
    last_runs: list[runs.RunView]
    failed_runs: list[runs.RunView]
    dead_letters: list[MessageView]


def overview(uow: UnitOfWork, actor: Actor, *, limit: int = 100) -> OperationsOverview:
    """Admin: the health of the actor's organization only: its channels (removed ones last), its
    deliveries and dead letters, its own flow runs and the installation-wide ones without details."""
    actor = require(uow, actor, Action.VIEW_OPERATIONS)
    return OperationsOverview(
        channels=list_channels(uow, actor.organization_id, include_removed=True),
        webhook_backlog=webhooks.backlog(uow, organization_id=actor.organization_id),
        problem_deliveries=webhooks.list_events(uow, actor.organization_id, limit=limit),
        last_runs=[runs.redacted(r) for r in runs.last_runs(uow, actor.organization_id)],
        failed_runs=[runs.redacted(r) for r in runs.recent_failures(uow, limit=20,
                                                                     organization_id=actor.organization_id)],
        dead_letters=outbox.list_dead_letters(uow, actor, limit=limit),
    )


def reprocess_delivery(uow: UnitOfWork, actor: Actor, event_id: int) -> None:
    """Put a FAILED delivery back in the queue (after a fix was deployed, say), or one with a part that
    was not routed to any channel (after adding the missing channel)."""
    actor = require(uow, actor, Action.VIEW_OPERATIONS)
    if not webhooks.reprocess(uow, event_id, organization_id=actor.organization_id):
        raise PermissionDenied(f"delivery {event_id} is not a failed or unrouted delivery of your organization")


@dataclass(frozen=True, slots=True)
class OrganizationStatus:
    id: int
    name: str
    timezone: str
    users: int
    channels: dict[str, int]  # status -> how many
    webhook_backlog: int
    outbox_pending: int
    dead_letters: int


@dataclass(frozen=True, slots=True)
class InstallationStatus:
    organizations: list[OrganizationStatus]
    webhook_backlog: int  # all of them, those of no channel included
    outbox_pending: int
    dead_letters: int
    last_runs: list[runs.RunView]
    failed_runs: list[runs.RunView]


def installation_status(uow: UnitOfWork, *, failures: int = 10) -> InstallationStatus:
    """The whole installation, for the operator's `switchboard status` (never shown on a page): every
    organization with its channels per status and its queues, the flows' last and failed runs."""
    users = _counts(uow.session.execute(select(User.organization_id, func.count()).group_by(User.organization_id)))
    per_status: dict[int, dict[str, int]] = {}
    for org_id, status, n in uow.session.execute(
            select(Channel.organization_id, Channel.status, func.count())
            .group_by(Channel.organization_id, Channel.status)).all():
        per_status.setdefault(org_id, {})[status] = n
    backlog = _counts(uow.session.execute(
        select(Channel.organization_id, func.count()).join(WebhookEvent, WebhookEvent.channel_id == Channel.id)
        .where(WebhookEvent.status == "RECEIVED").group_by(Channel.organization_id)))
    pending = _outbound_counts(uow, Message.status == "PENDING")
    dead = _outbound_counts(uow, Message.is_dead_letter)
    orgs = [OrganizationStatus(o.id, o.name, o.timezone, users.get(o.id, 0), per_status.get(o.id, {}),
                               backlog.get(o.id, 0), pending.get(o.id, 0), dead.get(o.id, 0))
            for o in uow.session.execute(select(Organization).order_by(Organization.name)).scalars()]
    return InstallationStatus(orgs, webhooks.backlog(uow), sum(pending.values()), sum(dead.values()),
                              runs.last_runs(uow), runs.recent_failures(uow, limit=failures))


def _counts(rows: Iterable[Any]) -> dict[int, int]:
    return {int(key): int(n) for key, n in rows}


def _outbound_counts(uow: UnitOfWork, condition: ColumnElement[bool] | InstrumentedAttribute[bool]) -> dict[int, int]:
    return _counts(uow.session.execute(
        select(Message.organization_id, func.count())
        .where(Message.direction == "OUTBOUND", condition).group_by(Message.organization_id)))
