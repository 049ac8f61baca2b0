"""The messaging window rule, pure: may an agent send free text to this customer now, and how?

Platforms limit what a business may send after the customer's last message:

* **WhatsApp** (and the sandbox, which speaks its API): free text within 24 hours of the customer's
  last message (the customer-service window); after that, or before the customer ever wrote, only an
  approved template.
* **Messenger / Instagram**: free text within 24 hours; from 24 hours to 7 days a human agent (not a
  bot) may still answer with the ``HUMAN_AGENT`` message tag; after 7 days nothing until the
  customer writes.
* **Telegram** (and any other platform): no window.

:func:`messaging_window` answers with a :class:`MessagingWindow`: the state, until when it lasts,
the tag to send with, and a sentence an agent understands. The inbox shows it, the outbox refuses a
free-text reply with it (:func:`require_free_text`) at enqueue and again right before the platform
is called. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from switchboard.errors import InvalidInput

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
HUMAN_AGENT_TAG = "HUMAN_AGENT"
TEMPLATE_PROVIDERS = frozenset({"whatsapp", "sandbox"})
TAG_PROVIDERS = frozenset({"messenger", "instagram"})
_LABEL = {"whatsapp": "WhatsApp", "sandbox": "WhatsApp (sandbox)", "messenger": "Messenger",
          "instagram": "Instagram", "telegram": "Telegram", "twilio": "SMS", "email": "Email"}


class WindowState(StrEnum):
    OPEN = "open"                            # free text, inside the customer-service window
    HUMAN_AGENT = "human_agent"              # Messenger/Instagram: free text with the HUMAN_AGENT tag
    TEMPLATE_REQUIRED = "template_required"  # WhatsApp: only an approved template
    CLOSED = "closed"                        # Messenger/Instagram after 7 days: nothing
    NO_WINDOW = "no_window"                  # the platform has no window (Telegram)


@dataclass(frozen=True, slots=True)
class MessagingWindow:
    provider: str
    state: WindowState
    reason: str  # one sentence for the agent
    closes_at: datetime | None = None  # when the current state ends (None: it does not)
    remaining: timedelta | None = None
    tag: str | None = None  # the message tag a free-text send must carry

    @property
    def free_text_allowed(self) -> bool:
        return self.state in (WindowState.OPEN, WindowState.HUMAN_AGENT, WindowState.NO_WINDOW)

    @property
    def templates_allowed(self) -> bool:
        """Whether an approved template may be sent (WhatsApp, at any time)."""
        return self.provider in TEMPLATE_PROVIDERS


def label(provider: str) -> str:
    return _LABEL.get(provider, provider.capitalize())


def describe_duration(delta: timedelta) -> str:
    """``2 d 3 h``, ``5 h 12 min``, ``7 min``, ``less than a minute`` (whole units, rounded down)."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "less than a minute"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def messaging_window(provider: str, last_inbound_at: datetime | None, now: datetime, *,
                     human: bool = True) -> MessagingWindow:
    """The window of a conversation on ``provider`` whose customer last wrote at ``last_inbound_at``
    (None: never), seen at ``now``, for a message written by a person (``human``) or by a bot (the
    HUMAN_AGENT tag is for people only)."""
    name = label(provider)
    if provider not in TEMPLATE_PROVIDERS and provider not in TAG_PROVIDERS:
        return MessagingWindow(provider, WindowState.NO_WINDOW,
                               f"{name} has no messaging window: you can reply at any time.")
    if last_inbound_at is None:
        if provider in TEMPLATE_PROVIDERS:
            return MessagingWindow(provider, WindowState.TEMPLATE_REQUIRED,
                                   f"The customer has not written to this {name} number yet: "
                                   "WhatsApp allows only an approved template to start the conversation.")
        return MessagingWindow(provider, WindowState.CLOSED,
                               f"The customer has not written to this {name} account yet: "
                               f"{name} allows replies only after the customer writes first.")
    since = max(now - last_inbound_at, timedelta(0))
    ago = describe_duration(since)
    window_end = last_inbound_at + CUSTOMER_SERVICE_WINDOW
    if since < CUSTOMER_SERVICE_WINDOW:
        left = window_end - now
        return MessagingWindow(provider, WindowState.OPEN,
                               f"Inside {name}'s 24-hour customer-service window: "
                               f"{describe_duration(left)} left to reply with free text.",
                               closes_at=window_end, remaining=left)
    if provider in TEMPLATE_PROVIDERS:
        return MessagingWindow(provider, WindowState.TEMPLATE_REQUIRED,
                               f"The customer last wrote {ago} ago: WhatsApp allows free text only within "
                               "24 hours of the customer's last message. Send an approved template instead.")
    if not human:
        return MessagingWindow(provider, WindowState.CLOSED,
                               f"The customer last wrote {ago} ago: after 24 hours {name} accepts only replies "
                               "written by a person (HUMAN_AGENT tag), not automated messages.")
    tag_end = last_inbound_at + HUMAN_AGENT_WINDOW
    if since < HUMAN_AGENT_WINDOW:
        left = tag_end - now
        return MessagingWindow(provider, WindowState.HUMAN_AGENT,
                               f"The 24-hour window closed {describe_duration(since - CUSTOMER_SERVICE_WINDOW)} "
                               f"ago: the reply goes with {name}'s HUMAN_AGENT tag, allowed up to 7 days after "
                               f"the customer's last message ({describe_duration(left)} left).",
                               closes_at=tag_end, remaining=left, tag=HUMAN_AGENT_TAG)
    return MessagingWindow(provider, WindowState.CLOSED,
                           f"The customer last wrote {ago} ago: {name} allows replies only within 7 days of "
                           "the customer's last message. Wait for the customer to write again.")


def require_free_text(window: MessagingWindow) -> None:
    """Raise InvalidInput with the window's sentence unless free text may be sent now."""
    if not window.free_text_allowed:
        raise InvalidInput(window.reason)
