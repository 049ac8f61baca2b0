"""Simulated customers for the sandbox: they write, wait, read replies and sometimes come back.

Each customer runs as one asyncio task in the sandbox's event loop. Timing is realistic at
``speed=1`` (seconds to type, minutes of patience, an hour or so before coming back) and divided by
the speed factor, so tests can run the same behaviour in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import base64
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from connectors.sandbox.app import SandboxPlatform


class CustomerChannel(Protocol):
    """What customers write on: the WhatsApp number (:class:`~connectors.sandbox.app.SandboxPlatform`) or
    the SMS number (:class:`~connectors.sandbox.twilio.SandboxSms`)."""

    kind: str

    def new_phone(self, rng: random.Random) -> str: ...

    def customer_writes(self, *, phone: str, name: str | None, text: str | None = None,
                        image: tuple[bytes, str, str | None] | None = None) -> Any: ...

    async def customer_reads(self, message_ids: list[str]) -> None: ...

FIRST_NAMES = ["Ana", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Isabel", "Jonas",
               "Kemi", "Liam", "Maya", "Noah", "Olga", "Priya", "Quentin", "Rosa", "Sven", "Tariq",
               "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe"]
LAST_NAMES = ["Silva", "Okafor", "Martin", "Novak", "Tanaka", "Haddad", "Kowalski", "Rossi", "Ngata",
              "Larsen", "Mendes", "Fischer", "Patel", "Dubois", "Kim", "Moreau"]


@dataclass(frozen=True)
class Topic:
    opening: str
    follow_ups: tuple[str, ...]
    answers: tuple[str, ...]


TOPICS: tuple[Topic, ...] = (
    Topic("Hi! My order #{n} hasn't arrived yet, can you check where it is?",
          ("It was supposed to arrive on Monday.", "The tracking page has said 'in transit' for a week."),
          ("The address is correct, yes.", "OK, I can wait a couple more days.", "Can you send a new one?")),
    Topic("Hello, I was charged twice for my last purchase.",
          ("Both charges are on my card statement from yesterday.",),
          ("It's the Visa ending in {n4}.", "Thanks, how long does the refund take?")),
    Topic("Hey, do you have the blue jacket in size M?",
          ("The one from your spring collection.",),
          ("Great, can I pick it up in store?", "What about size L then?")),
    Topic("Hi, I'd like to change the delivery address for order #{n}.",
          ("I moved last week, sorry!",),
          ("New address: {n4} Harbour Street, flat 2.", "Yes please, that works.")),
    Topic("Good morning, the app keeps logging me out.",
          ("I'm on Android, latest version.", "Already tried reinstalling."),
          ("Just tried it, still happening.", "That fixed it, thanks!")),
    Topic("Hello! Can I return an item I bought online in one of your shops?",
          (),
          ("I have the receipt, yes.", "Perfect.")),
    Topic("Hi, what are your opening hours on Sunday?",
          (),
          ("And on public holidays?",)),
)
CLOSERS = ("Thanks a lot!", "Great, thank you 🙏", "Perfect, have a nice day!", "ok thanks", "👍")
NUDGES = ("Hello? Is anyone there?", "Any update on this?", "??")
PHOTO_CAPTIONS = ("Here's a photo", "See the picture", "This is what I got")

# a valid 1x1 PNG, sent when a customer "attaches a photo"
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@dataclass
class Customer:
    phone: str
    name: str
    topic: Topic
    state: str = "idle"
    conversations: int = 0
    messages_written: int = 0
    replies_read: int = 0
    inbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    def receive(self, message_id: str) -> None:
        """A message from Switchboard was delivered to this customer's phone."""
        self.inbox.put_nowait(message_id)

    def describe(self) -> dict[str, Any]:
        return {"phone": self.phone, "name": self.name, "state": self.state,
                "conversations": self.conversations, "messages_written": self.messages_written,
                "replies_read": self.replies_read, "unread": self.inbox.qsize()}


class CustomerSimulation:
    """Drives ``count`` customers writing on ``channel`` (the platform's WhatsApp number by default:
    ``config.customers`` of them); ``seed`` (default ``config.seed``) makes them reproducible."""

    def __init__(self, platform: SandboxPlatform, channel: CustomerChannel | None = None, *,
                 count: int | None = None, seed: int | None = None) -> None:
        self.platform = platform
        self.channel: CustomerChannel = channel if channel is not None else platform
        self.rng = random.Random(platform.config.seed if seed is None else seed)
        self.customers: dict[str, Customer] = {}
        used: set[str] = set()
        for i in range(platform.config.customers if count is None else count):
            phone = self.channel.new_phone(self.rng)
            while phone in used:
                phone = self.channel.new_phone(self.rng)
            used.add(phone)
            name = f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {self.rng.choice(LAST_NAMES)}"
            self.customers[phone] = Customer(phone=phone, name=name, topic=self.rng.choice(TOPICS))

    def start(self) -> None:
        for customer in self.customers.values():
            self.platform.spawn(self._live(customer))

    def customer(self, phone: str) -> Customer | None:
        return self.customers.get(phone.lstrip("+"))

    def describe(self) -> list[dict[str, Any]]:
        return [{**c.describe(), "channel": self.channel.kind} for c in self.customers.values()]

    # --- behaviour ----------------------------------------------------------------------------------
    def _fill(self, text: str) -> str:
        return text.format(n=self.rng.randint(10_000, 99_999), n4=self.rng.randint(1000, 9999))

    async def _write(self, c: Customer, text: str, *, photo: bool = False) -> None:
        c.state = "typing"
        await self.platform.sleep(min(20.0, 1.0 + 0.12 * len(text)))  # typing speed
        image = (TINY_PNG, "image/png", text) if photo else None
        self.channel.customer_writes(phone=c.phone, name=c.name, text=None if photo else text, image=image)
        c.messages_written += 1
        c.state = "waiting"

    async def _wait_for_replies(self, c: Customer, patience: float) -> list[str]:
        try:
            first = await asyncio.wait_for(c.inbox.get(), timeout=patience / self.platform.config.speed)
        except TimeoutError:
            return []
        replies = [first]
        # agents often send several messages in a row: keep reading for a moment
        while True:
            try:
                replies.append(await asyncio.wait_for(c.inbox.get(), timeout=3.0 / self.platform.config.speed))
            except TimeoutError:
                return replies

    async def _cycle(self, c: Customer) -> None:
        rng = self.rng
        c.conversations += 1
        c.topic = rng.choice(TOPICS)
        await self._write(c, self._fill(c.topic.opening))
        if c.topic.follow_ups and rng.random() < 0.45:
            await self._write(c, self._fill(rng.choice(c.topic.follow_ups)))
        if rng.random() < 0.1:
            await self._write(c, rng.choice(PHOTO_CAPTIONS), photo=True)
        answers = list(c.topic.answers)
        rng.shuffle(answers)  # never the same answer twice in one conversation
        turns = rng.randint(1, 1 + len(answers))
        nudged = False
        turn = 0
        while turn < turns:
            replies = await self._wait_for_replies(c, patience=rng.uniform(180.0, 900.0))
            if not replies:
                if nudged:
                    c.state = "gave_up"
                    return
                nudged = True
                await self._write(c, rng.choice(NUDGES))
                continue
            c.state = "reading"
            await self.platform.sleep(rng.uniform(2.0, 20.0))
            await self.channel.customer_reads(replies)
            c.replies_read += len(replies)
            turn += 1
            if turn >= turns:
                if rng.random() < 0.6:
                    await self.platform.sleep(rng.uniform(2.0, 15.0))
                    await self._write(c, rng.choice(CLOSERS))
                break
            await self.platform.sleep(rng.uniform(3.0, 30.0))  # thinking
            await self._write(c, self._fill(answers.pop()))
        c.state = "done"

    async def _live(self, c: Customer) -> None:
        await self.platform.sleep(self.rng.uniform(1.0, 45.0))  # customers arrive staggered
        while True:
            await self._cycle(c)
            # read anything that arrives after the conversation ended, then maybe come back later
            if self.rng.random() >= self.platform.config.come_back_probability:
                c.state = "left"
                await self._read_late_replies(c)
                return
            c.state = "away"
            await self.platform.sleep(self.rng.uniform(20 * 60.0, 90 * 60.0))
            late: list[str] = []
            while not c.inbox.empty():
                late.append(c.inbox.get_nowait())
            if late:  # seen while away: read before writing again
                await self.channel.customer_reads(late)
                c.replies_read += len(late)

    async def _read_late_replies(self, c: Customer) -> None:
        while True:
            wamid = await c.inbox.get()
            await self.platform.sleep(self.rng.uniform(5.0, 60.0))
            await self.channel.customer_reads([wamid])
            c.replies_read += 1
