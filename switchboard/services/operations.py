"""Operator/admin read models: channels with health, webhook failures, flow runs (admins only)."""

from __future__ import annotations

from dataclasses import dataclass

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
    actor = require(uow, actor, Action.VIEW_OPERATIONS)
    return OperationsOverview(
        channels=list_channels(uow, actor.organization_id),
        webhook_backlog=webhooks.backlog(uow),
        problem_deliveries=webhooks.list_events(uow, actor.organization_id, limit=limit),
        last_runs=runs.last_runs(uow),
        failed_runs=runs.recent_failures(uow, limit=20),
        dead_letters=outbox.list_dead_letters(uow, actor, limit=limit),
    )


def reprocess_delivery(uow: UnitOfWork, actor: Actor, event_id: int) -> None:
    """Put a FAILED delivery back in the queue (after a fix was deployed, say), or one with a part that
    was not routed to any channel (after adding the missing channel)."""
    actor = require(uow, actor, Action.VIEW_OPERATIONS)
    if not webhooks.reprocess(uow, event_id, organization_id=actor.organization_id):
        raise PermissionDenied(f"delivery {event_id} is not a failed or unrouted delivery of your organization")
