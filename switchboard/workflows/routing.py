"""Which channel each part of a stored webhook delivery is for.

A Meta app has ONE webhook callback URL for all the phone numbers of its WhatsApp Business Accounts,
so when an organization connects several numbers of one app (several Switchboard channels), every
number's deliveries arrive on the one channel URL configured in the app. Each change of a WhatsApp
delivery names its number (``value.metadata.phone_number_id``):

* the receiving channel's own number, or no number (WABA-level updates): the receiving channel;
* the number of another WhatsApp channel of the **same organization** (same provider: sandbox
  deliveries only go to sandbox channels): that channel;
* any other number (none of the organization's channels, several of them, another organization's):
  not ingested anywhere; an :class:`Ignored` item whose reason starts with
  :data:`~switchboard.services.webhooks.NOT_ROUTED` says why, so the delivery is stored IGNORED (or
  PROCESSED with that note when other parts were ingested), listed for admins and reprocessable.

Deliveries of other providers are parsed as they always were: everything for the receiving channel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from connectors.base import WEBHOOKS
from connectors.whatsapp import WhatsAppConnector
from switchboard.services.channels import ChannelView
from switchboard.services.webhooks import NOT_ROUTED
from switchboard.types import (
    Ignored,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    ParsedItem,
    ReadWatermark,
    StatusUpdate,
)
from switchboard.workflows.connector_cache import ConnectorCache

_LABELS = {"whatsapp": "WhatsApp", "sandbox": "sandbox"}


@dataclass
class RoutedDelivery:
    """Parsed items per channel id (the receiving channel first) and notes for the delivery's reason."""

    batches: dict[int, list[ParsedItem]]
    notes: list[str] = field(default_factory=list)

    @property
    def items(self) -> list[ParsedItem]:
        return [item for batch in self.batches.values() for item in batch]


def parse_and_route(connectors: ConnectorCache, channel_id: int, body: bytes) -> RoutedDelivery:
    """Parse a delivery received on ``channel_id`` with its connector and route each part (see module
    docstring). Raises what the connector raises (``PayloadError`` for a malformed body)."""
    channel, connector = connectors.port(channel_id, WEBHOOKS)
    if not isinstance(connector, WhatsAppConnector):  # only WhatsApp deliveries name their number
        return RoutedDelivery({channel_id: list(connector.parse_webhook(body))})
    routed = RoutedDelivery({channel_id: []})
    routed_counts: Counter[tuple[str, str]] = Counter()
    for number, items in connector.parse_webhook_by_number(body):
        wanted = [i for i in items if not isinstance(i, Ignored)]
        if number is None or number == connector.phone_number_id or not wanted:
            routed.batches[channel_id].extend(items)  # ours, or only notes (system messages...)
            continue
        targets = _channels_for(connectors, channel, number)
        if len(targets) == 1:
            target = targets[0]
            routed.batches.setdefault(target.id, []).extend(items)
            routed_counts[(target.key, number)] += len(wanted)
            continue
        label = _LABELS.get(channel.provider, channel.provider)
        if targets:
            why = (f"phone number id {number} belongs to several {label} channels of this organization "
                   f"({', '.join(sorted(t.key for t in targets))})")
        else:
            why = f"phone number id {number} belongs to no {label} channel of this organization"
        routed.batches[channel_id].extend(i for i in items if isinstance(i, Ignored))
        routed.batches[channel_id].append(Ignored(reason=f"{NOT_ROUTED}{why}: {_count(wanted)} not ingested",
                                                  kind="not_routed", raw={"phone_number_id": number}))
    routed.notes = [f"routed to channel {key} (phone number id {number}): {n} item{'s' if n != 1 else ''}"
                    for (key, number), n in sorted(routed_counts.items())]
    return routed


def _channels_for(connectors: ConnectorCache, channel: ChannelView, number: str) -> tuple[ChannelView, ...]:
    """The receiving channel's organization's channels of the same provider with that number (a number
    not found is looked up again: its channel may have been added a moment ago)."""
    found = connectors.whatsapp_numbers(channel.organization_id, channel.provider).get(number)
    if not found:
        found = connectors.whatsapp_numbers(channel.organization_id, channel.provider, refresh=True).get(number)
    return tuple(c for c in found or () if c.organization_id == channel.organization_id)


def _count(items: Sequence[ParsedItem]) -> str:
    kinds: Counter[str] = Counter()
    for item in items:
        if isinstance(item, InboundMessage):
            kinds["message"] += 1
        elif isinstance(item, StatusUpdate | ReadWatermark):
            kinds["status"] += 1
        elif isinstance(item, MessageEdit):
            kinds["edit"] += 1
        elif isinstance(item, MessageDeletion):
            kinds["deletion"] += 1
    plural = {"message": "messages", "status": "statuses", "edit": "edits", "deletion": "deletions"}
    return ", ".join(f"{n} {kind if n == 1 else plural[kind]}"
                     for kind, n in sorted(kinds.items(), key=lambda kv: list(plural).index(kv[0])))
