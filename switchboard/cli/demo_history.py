"""A week of realistic, seeded demo history as an `import-events` timeline (docs/import-events.md).

The demo replays it once through the real services so the dashboards have data from the first
minute: business-hours traffic with some nights and weekends, bot greetings, follow-ups, reopened and
reassigned conversations, delivery/read receipts and agent presence.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

FIRST_NAMES = ["Carla", "Jonas", "Mia", "Ali", "Sofia", "Lukas", "Emma", "Noah", "Lea", "Ben", "Hanna",
               "Paul", "Lina", "Finn", "Zoe", "Elias", "Mila", "Leon", "Ida", "Theo"]
OPENERS = ["Hi, my order {n} has not arrived yet", "Hello, can I change my delivery address?",
           "Do you ship to Austria?", "I was charged twice for order {n}", "The jacket is too small, can I swap it?",
           "Is the blue backpack back in stock?", "How do I return an item?", "My discount code does not work"]
FOLLOW_UPS = ["Thanks!", "Ok, and how long does that take?", "Great, thank you so much", "It is order {n}",
              "Could you also check my other order?", "Perfect"]
REPLIES = ["Hi {name}, let me check that for you.", "I have found your order, one moment please.",
           "Done! You will get an email confirmation shortly.", "Sorry about that, a replacement ships today.",
           "Yes, shipping takes 2-3 business days.", "I have refunded the duplicate charge."]
BOT_GREETING = "Thanks for writing! An agent will be with you shortly."


def generate(*, org: str, timezone: str, channel_key: str, provider: str, agents: list[str], manager: str,
             days: int = 7, per_weekday: int = 14, per_weekend_day: int = 4, seed: int = 7,
             now: datetime | None = None) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    tz = ZoneInfo(timezone)
    now = (now or datetime.now(tz)).astimezone(tz)
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    seq = 0

    def add(at: datetime, **line: Any) -> None:
        nonlocal seq
        seq += 1
        events.append((at, seq, {"at": at.isoformat(), **line}))

    contact_no = 0
    msg_no = 0
    for day_offset in range(days, 0, -1):
        day = (now - timedelta(days=day_offset)).date()
        weekday = day.weekday() < 5
        start_of_day = datetime.combine(day, time(8, 50), tz)
        if weekday:
            for agent in agents:
                add(start_of_day + timedelta(minutes=rng.randint(0, 15)), type="presence", agent=agent,
                    state="online")
                add(datetime.combine(day, time(17, 30), tz) + timedelta(minutes=rng.randint(0, 30)),
                    type="presence", agent=agent, state="offline")
        for _ in range(per_weekday if weekday else per_weekend_day):
            contact_no += 1
            name = rng.choice(FIRST_NAMES)
            contact = f"+49301{contact_no:06d}"
            order = rng.randint(1000, 9999)
            hour = rng.choice([9, 9, 10, 10, 11, 11, 12, 13, 14, 14, 15, 16, 17, 19, 22]) if weekday else rng.randint(8, 22)
            t = datetime.combine(day, time(hour, rng.randint(0, 59), rng.randint(0, 59)), tz)
            ch = {"channel": channel_key, "contact": contact}

            def inbound(at: datetime, text: str, first: bool = False, ch: dict[str, str] = ch, name: str = name,
                        **extra: Any) -> None:
                nonlocal msg_no
                msg_no += 1
                line: dict[str, Any] = {"type": "inbound", **ch, "text": text, "message_id": f"demo.in.{msg_no}"}
                if first:
                    line["contact_name"] = f"{name} {chr(65 + rng.randint(0, 25))}."
                add(at, **line, **extra)

            def reply(at: datetime, agent: str, text: str, ch: dict[str, str] = ch) -> None:
                nonlocal msg_no
                msg_no += 1
                mid = f"demo.out.{msg_no}"
                add(at, type="reply", agent=agent, **ch, text=text, message_id=mid)
                add(at + timedelta(seconds=rng.randint(1, 5)), type="status", message_id=mid, status="delivered")
                if rng.random() < 0.8:
                    add(at + timedelta(seconds=rng.randint(20, 600)), type="status", message_id=mid, status="read")

            inbound(t, rng.choice(OPENERS).format(n=order), first=True)
            if rng.random() < 0.35:
                msg_no += 1
                add(t + timedelta(seconds=2), type="bot_reply", **ch, text=BOT_GREETING, message_id=f"demo.bot.{msg_no}")
            in_hours = weekday and 9 <= hour < 18
            wait = timedelta(minutes=rng.randint(1, 12)) if in_hours else timedelta(hours=rng.randint(1, 9))
            agent = rng.choice(agents)
            t_accept = t + wait
            add(t_accept, type="accept", agent=agent, **ch)
            t_reply = t_accept + timedelta(seconds=rng.randint(30, 420))
            reply(t_reply, agent, rng.choice(REPLIES).format(name=name))
            t_last = t_reply
            if rng.random() < 0.6:
                t_f = t_reply + timedelta(minutes=rng.randint(1, 10))
                inbound(t_f, rng.choice(FOLLOW_UPS).format(n=order))
                if rng.random() < 0.15:
                    other = rng.choice([a for a in agents if a != agent])
                    add(t_f + timedelta(minutes=2), type="reassign", agent=manager, **ch, to=other)
                    agent = other
                    t_f += timedelta(minutes=2)
                t_last = t_f + timedelta(seconds=rng.randint(40, 900))
                reply(t_last, agent, rng.choice(REPLIES).format(name=name))
            t_done = t_last + timedelta(minutes=rng.randint(1, 8))
            add(t_done, type="complete", agent=agent, **ch)
            if rng.random() < 0.15 and day_offset > 1:
                t_back = t_done + timedelta(hours=rng.randint(2, 20))
                inbound(t_back, "Sorry, one more question about the same order")
                agent2 = rng.choice(agents)
                add(t_back + timedelta(minutes=rng.randint(2, 30)), type="accept", agent=agent2, **ch)
                t_r2 = t_back + timedelta(minutes=rng.randint(31, 45))
                reply(t_r2, agent2, "Of course, what would you like to know?")
                add(t_r2 + timedelta(minutes=rng.randint(2, 10)), type="complete", agent=agent2, **ch)
    events.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in events if e[0] < now]


def write_timeline(path: Path, *, org: str, timezone: str, business_hours: dict[str, Any], channel_key: str,
                   provider: str, channel_name: str, users: list[tuple[str, str, str]], **kw: Any) -> Path:
    """Write declarations + generated events as JSONL; returns the path."""
    agents = [e for e, _, r in users if r == "agent"]
    manager = next(e for e, _, r in users if r in ("manager", "admin"))
    lines: list[dict[str, Any]] = [
        {"type": "organization", "name": org, "timezone": timezone, "business_hours": business_hours},
        {"type": "channel", "key": channel_key, "provider": provider, "name": channel_name},
    ]
    for email, name, role in users:
        line: dict[str, Any] = {"type": "user", "email": email, "name": name, "role": role}
        if role == "agent":
            line["permissions"] = {channel_key: ["view", "send"]}
        lines.append(line)
    lines += generate(org=org, timezone=timezone, channel_key=channel_key, provider=provider, agents=agents,
                      manager=manager, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path
