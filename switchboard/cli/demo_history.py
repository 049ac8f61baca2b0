"""30 days of realistic, seeded demo history on several channels as an `import-events` timeline
(docs/import-events.md).

The demo replays it once through the real services so every chart and notebook has something to show
from the first minute:

* **rhythms** — a daily curve (quiet nights, a morning peak, a lunch dip), a weekly one (Monday peak,
  quiet weekends); what arrives while nobody works waits for the next shift (SLA breaches);
* **channels** — the WhatsApp sandbox and offline Messenger, Instagram and Telegram channels, each
  with its own share of the traffic and its own customers;
* **agents with habits** — see :data:`HABITS`: a fast one, a slow one, a part-timer, one who hands
  conversations over a lot (released back to the queue, or reassigned by the manager);
* bot greetings, follow-ups, unanswered last turns, reopened conversations (a new cycle),
  delivery/read receipts and agent presence (online minutes).

Everything comes from one ``random.Random(seed)``: the same seed and ``now`` give the same file.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

FIRST_NAMES = ["Carla", "Jonas", "Mia", "Ali", "Sofia", "Lukas", "Emma", "Noah", "Lea", "Ben", "Hanna",
               "Paul", "Lina", "Finn", "Zoe", "Elias", "Mila", "Leon", "Ida", "Theo"]
OPENERS = ["Hi, my order {n} has not arrived yet", "Hello, can I change my delivery address?",
           "Do you ship to Austria?", "I was charged twice for order {n}", "The jacket is too small, can I swap it?",
           "Is the blue backpack back in stock?", "How do I return an item?", "My discount code does not work"]
FOLLOW_UPS = ["Ok, and how long does that take?", "It is order {n}", "Could you also check my other order?",
              "And what about the invoice?", "Can I pick it up in the shop instead?"]
THANKS = ["Thanks!", "Great, thank you so much", "Perfect", "👍"]
REPLIES = ["Hi {name}, let me check that for you.", "I have found your order, one moment please.",
           "Done! You will get an email confirmation shortly.", "Sorry about that, a replacement ships today.",
           "Yes, shipping takes 2-3 business days.", "I have refunded the duplicate charge."]
BOT_GREETING = "Thanks for writing! An agent will be with you shortly."

# relative arrivals per hour of the day (local time) and per weekday (Monday first)
HOURLY = [0.1, 0.05, 0.05, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.6, 3.0, 2.8, 2.0, 2.2, 2.6, 2.4, 2.2, 1.8,
          1.3, 1.0, 0.9, 0.7, 0.4, 0.2]
WEEKLY = [1.45, 1.1, 1.0, 0.95, 0.85, 0.35, 0.25]


@dataclass(frozen=True, slots=True)
class Habit:
    """How one agent works: the weekdays and hours of the shift, how long until a waiting conversation
    is taken and until the first reply (seconds), and how often the conversation is handed over."""

    days: tuple[int, ...]
    start: time
    end: time
    accept_s: tuple[int, int]
    reply_s: tuple[int, int]
    hand_over: float = 0.05
    weight: float = 1.0  # share of the conversations taken while online


HABITS = {
    "fast": Habit((0, 1, 2, 3, 4), time(8, 45), time(17, 15), (20, 120), (15, 90), weight=1.4),
    "slow": Habit((0, 1, 2, 3, 4), time(9, 30), time(18, 30), (120, 900), (300, 1500), weight=1.0),
    "part_time": Habit((0, 1, 2), time(9, 0), time(13, 0), (40, 300), (60, 400), weight=1.0),
    "hands_over": Habit((1, 2, 3, 4, 5), time(11, 0), time(20, 0), (60, 420), (60, 600), hand_over=0.4,
                        weight=1.0),
}


@dataclass(frozen=True, slots=True)
class HistoryChannel:
    key: str
    provider: str
    name: str
    share: float  # of the conversations
    contact_prefix: str  # customers' provider ids: prefix + a running number
    bot_greeting: float = 0.35  # share of first messages the bot greets


def _shift(h: Habit, day: datetime) -> tuple[datetime, datetime] | None:
    if day.weekday() not in h.days:
        return None
    tz = day.tzinfo
    return datetime.combine(day.date(), h.start, tz), datetime.combine(day.date(), h.end, tz)


def generate(*, timezone: str, channels: list[HistoryChannel], agents: dict[str, str], manager: str,
             days: int = 30, per_day: float = 11.0, seed: int = 7, now: datetime | None = None
             ) -> list[dict[str, Any]]:
    """The events of ``days`` days up to ``now``, sorted by time; ``agents`` maps email -> habit name."""
    rng = random.Random(seed)
    tz = ZoneInfo(timezone)
    now = (now or datetime.now(tz)).astimezone(tz)
    habits = {a: HABITS[h] for a, h in agents.items()}
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    seq = 0
    msg_no = 0
    contact_no = 0

    def add(at: datetime, **line: Any) -> None:
        nonlocal seq
        seq += 1
        events.append((at, seq, {"at": at.isoformat(), **line}))

    first_day = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    shifts: list[tuple[datetime, datetime, str]] = []
    for d in range(days + 1):
        day = first_day + timedelta(days=d)
        for agent, h in habits.items():
            s = _shift(h, day)
            if s is None:
                continue
            start = s[0] + timedelta(minutes=rng.randint(-10, 12))
            end = s[1] + timedelta(minutes=rng.randint(-15, 25))
            shifts.append((start, end, agent))
            add(start, type="presence", agent=agent, state="online")
            if end - start > timedelta(hours=5):  # a lunch break
                lunch = datetime.combine(day.date(), time(12, 30), tz) + timedelta(minutes=rng.randint(-20, 40))
                add(lunch, type="presence", agent=agent, state="away")
                add(lunch + timedelta(minutes=rng.randint(25, 50)), type="presence", agent=agent, state="online")
            add(end, type="presence", agent=agent, state="offline")

    def online_at(t: datetime, exclude: str | None = None) -> tuple[datetime, str]:
        """When an agent takes a conversation waiting since ``t`` (the next shift if none works), and who."""
        now_on = [a for s, e, a in shifts if s <= t < e - timedelta(minutes=10) and a != exclude]
        if now_on:
            who = rng.choices(now_on, weights=[habits[a].weight for a in now_on])[0]
            return t, who
        later = sorted((s, a) for s, _, a in shifts if s > t and a != exclude)
        if not later:
            return t + timedelta(hours=1), rng.choice([a for a in agents if a != exclude])
        return later[0][0] + timedelta(minutes=rng.randint(1, 25)), later[0][1]

    def deliver(mid: str, at: datetime) -> None:  # one receipt per message (read implies delivered)
        if rng.random() < 0.75:
            add(at + timedelta(seconds=rng.randint(20, 900)), type="status", message_id=mid, status="read")
        else:
            add(at + timedelta(seconds=rng.randint(1, 5)), type="status", message_id=mid, status="delivered")

    def conversation(t: datetime, ch: HistoryChannel, cycle_back: bool) -> None:
        nonlocal msg_no, contact_no
        contact_no += 1
        name = rng.choice(FIRST_NAMES)
        order = rng.randint(1000, 9999)
        conv = {"channel": ch.key, "contact": f"{ch.contact_prefix}{contact_no:06d}"}

        def inbound(at: datetime, text: str, **extra: Any) -> None:
            nonlocal msg_no
            msg_no += 1
            add(at, type="inbound", **conv, text=text, message_id=f"demo.in.{msg_no}", **extra)

        def reply(at: datetime, agent: str, text: str) -> None:
            nonlocal msg_no
            msg_no += 1
            mid = f"demo.out.{msg_no}"
            add(at, type="reply", agent=agent, **conv, text=text, message_id=mid)
            deliver(mid, at)

        def cycle(t_in: datetime, opener: str, first: bool) -> datetime:
            """One cycle from the customer's message to completion; returns when it was completed."""
            nonlocal msg_no
            extra = {"contact_name": f"{name} {chr(65 + rng.randint(0, 25))}."} if first else {}
            inbound(t_in, opener, **extra)
            if first and rng.random() < ch.bot_greeting:
                msg_no += 1
                mid = f"demo.bot.{msg_no}"
                add(t_in + timedelta(seconds=2), type="bot_reply", **conv, text=BOT_GREETING, message_id=mid)
                deliver(mid, t_in + timedelta(seconds=2))
            t_pick, agent = online_at(t_in)
            h = habits[agent]
            t = t_pick + timedelta(seconds=rng.randint(*h.accept_s))
            add(t, type="accept", agent=agent, **conv)
            if rng.random() < 0.03:  # spam or a mistake: closed without a word
                t += timedelta(seconds=rng.randint(20, 120))
                add(t, type="complete", agent=agent, **conv)
                return t
            t += timedelta(seconds=rng.randint(*h.reply_s))
            reply(t, agent, rng.choice(REPLIES).format(name=name))
            for _ in range(rng.choice([0, 1, 1, 2])):  # the customer asks more
                t += timedelta(seconds=rng.randint(40, 600))
                inbound(t, rng.choice(FOLLOW_UPS).format(n=order))
                if rng.random() < h.hand_over:  # handed over: released to the queue, or reassigned
                    t += timedelta(seconds=rng.randint(30, 300))
                    if rng.random() < 0.5:
                        add(t, type="release", agent=agent, **conv)
                        t_pick, other = online_at(t, exclude=agent)
                        t = t_pick + timedelta(seconds=rng.randint(*habits[other].accept_s))
                        add(t, type="accept", agent=other, **conv)
                    else:
                        other = rng.choice([a for a in agents if a != agent])
                        add(t, type="reassign", agent=manager, **conv, to=other)
                    agent, h = other, habits[other]
                t += timedelta(seconds=rng.randint(*h.reply_s))
                reply(t, agent, rng.choice(REPLIES).format(name=name))
            if rng.random() < 0.45:  # a last word from the customer
                t += timedelta(seconds=rng.randint(30, 300))
                inbound(t, rng.choice(THANKS))
                if rng.random() < 0.3:
                    t += timedelta(seconds=rng.randint(20, 200))
                    reply(t, agent, "You are welcome, have a nice day!")
                # else: the last turn stays unanswered
            t += timedelta(seconds=rng.randint(60, 900))
            add(t, type="complete", agent=agent, **conv)
            return t

        t_done = cycle(t, rng.choice(OPENERS).format(n=order), True)
        if cycle_back:
            t_back = t_done + timedelta(hours=rng.randint(1, 30), minutes=rng.randint(0, 59))
            cycle(t_back, "Sorry, one more question about the same order", False)

    shares = [c.share for c in channels]
    for d in range(days + 1):
        day = first_day + timedelta(days=d)
        expected = per_day * WEEKLY[day.weekday()]
        count = max(0, round(rng.gauss(expected, expected ** 0.5)))
        for _ in range(count):
            hour = rng.choices(range(24), weights=HOURLY)[0]
            t = day.replace(hour=hour, minute=rng.randint(0, 59), second=rng.randint(0, 59))
            conversation(t, rng.choices(channels, weights=shares)[0], rng.random() < 0.12)
    events.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in events if e[0] < now]


def write_timeline(path: Path, *, org: str, timezone: str, business_hours: dict[str, Any],
                   channels: list[HistoryChannel], users: list[tuple[str, str, str]], habits: dict[str, str],
                   **kw: Any) -> Path:
    """Write declarations + generated events as JSONL; returns the path. ``habits`` maps each agent's
    email to a :data:`HABITS` name; every agent may view and send on every channel."""
    agents = {e: habits[e] for e, _, r in users if r == "agent"}
    manager = next(e for e, _, r in users if r == "manager")
    lines: list[dict[str, Any]] = [
        {"type": "organization", "name": org, "timezone": timezone, "business_hours": business_hours},
        *({"type": "channel", "key": c.key, "provider": c.provider, "name": c.name} for c in channels),
    ]
    for email, name, role in users:
        line: dict[str, Any] = {"type": "user", "email": email, "name": name, "role": role}
        if role == "agent":
            line["permissions"] = {c.key: ["view", "send"] for c in channels}
        lines.append(line)
    lines += generate(timezone=timezone, channels=channels, agents=agents, manager=manager, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    return path
