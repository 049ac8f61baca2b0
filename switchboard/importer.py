"""`switchboard import-events FILE`: replay a JSONL timeline through the real inbox services.

The file declares an organization, its channels and users, then lists events (``inbound``, ``accept``,
``release``, ``complete``, ``reassign``, ``reopen``, ``reply``, ``bot_reply``, ``status``,
``presence``), each with its own ``at`` timestamp; every event is applied by the same service the app
uses, with ``now`` = that timestamp. The format is documented in ``docs/import-events.md``.

Safety: the whole file is validated before anything is written (every bad line is reported with its
number), then replayed in ONE database transaction that the importer commits at the end (services never
commit): if a line fails during the replay (e.g. an agent replies to a conversation someone else holds),
nothing of the file is kept. Importing the same file twice is a no-op (its SHA-256 is recorded in the
audit log). Declarations act as the organization's system actor; event lines as the user they name.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import DBAPIError

from switchboard.auth.users import create_user
from switchboard.db.schema import PROVIDERS, ROLES, AuditLog, Contact, Conversation, Organization, User
from switchboard.domain.conversation import MessageStatus
from switchboard.errors import InvalidInput, NotFound, SwitchboardError
from switchboard.services.assignment import set_max_concurrent
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.conversations import accept, complete, reassign, release, reopen
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import (
    create_organization,
    organization_id_by_name,
    update_settings,
    validate_business_hours,
)
from switchboard.services.outbox import record_already_sent_reply
from switchboard.services.presence import heartbeat
from switchboard.types import Actor, ContactRef, InboundMessage, StatusUpdate
from switchboard.uow import UnitOfWork

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "inbound": ("channel", "contact", "text"),
    "accept": ("agent", "channel", "contact"),
    "release": ("agent", "channel", "contact"),
    "complete": ("agent", "channel", "contact"),
    "reopen": ("agent", "channel", "contact"),
    "reassign": ("agent", "channel", "contact", "to"),
    "reply": ("agent", "channel", "contact", "text"),
    "bot_reply": ("channel", "contact", "text"),
    "status": ("message_id", "status"),
    "presence": ("agent", "state"),
}
DECLARATIONS = ("organization", "channel", "user")
STATUSES = {"sent": MessageStatus.SENT, "delivered": MessageStatus.DELIVERED, "read": MessageStatus.READ,
            "failed": MessageStatus.FAILED}
STATES = {"online": "ONLINE", "away": "AWAY", "offline": "OFFLINE"}
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_REPORTED = 20
Mode = Literal["reorder", "consecutive", "strict"]


@dataclass(frozen=True, slots=True)
class ImportReport:
    path: str
    sha256: str
    lines: int
    organization_id: int
    channels: int
    users: int
    events: int
    messages: int
    conversations: int
    elapsed_s: float
    already_imported: bool = False

    def summary(self) -> str:
        if self.already_imported:
            return f"{self.path}: already imported (sha256 {self.sha256[:12]}); nothing changed"
        return (f"{self.path}: {self.lines} lines, {self.events} events replayed ({self.messages} messages, "
                f"{self.conversations} conversations, {self.channels} channels, {self.users} users) "
                f"in {self.elapsed_s:.2f} s")


@dataclass
class _Line:
    no: int
    type: str
    data: dict[str, Any]
    at: datetime | None = None


@dataclass
class _Plan:
    org: _Line | None = None
    channels: dict[str, _Line] = field(default_factory=dict)
    users: dict[str, _Line] = field(default_factory=dict)
    events: list[_Line] = field(default_factory=list)
    outbound_ids: dict[str, str] = field(default_factory=dict)  # message_id -> channel key


def _str(d: dict[str, Any], key: str, errors: list[str], no: int, *, required: bool = True) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            errors.append(f"line {no}: missing \"{key}\"")
        return None
    if not isinstance(v, str) or not v.strip():
        errors.append(f"line {no}: \"{key}\" must be a non-empty string")
        return None
    return v


def _validate(lines: list[str]) -> _Plan:
    plan = _Plan()
    errors: list[str] = []
    last_at: datetime | None = None
    inbound_ids: set[tuple[str, str]] = set()
    for no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
        except json.JSONDecodeError as e:
            errors.append(f"line {no}: not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(d, dict):
            errors.append(f"line {no}: each line must be a JSON object")
            continue
        kind = d.get("type")
        if kind not in DECLARATIONS and kind not in EVENT_FIELDS:
            errors.append(f"line {no}: unknown type {kind!r}; use one of "
                          f"{', '.join(DECLARATIONS + tuple(EVENT_FIELDS))}")
            continue
        line = _Line(no, kind, d)
        if kind == "organization":
            if plan.org is not None:
                errors.append(f"line {no}: a second organization (one file imports one organization)")
            elif plan.channels or plan.users or plan.events:
                errors.append(f"line {no}: the organization must be declared first")
            _str(d, "name", errors, no)
            tz = d.get("timezone", "UTC")
            try:
                ZoneInfo(str(tz))
            except (ZoneInfoNotFoundError, ValueError):
                errors.append(f"line {no}: unknown IANA timezone {tz!r}")
            try:
                validate_business_hours(d.get("business_hours") or {})
            except (InvalidInput, AttributeError, TypeError) as e:
                errors.append(f"line {no}: {e}")
            if "auto_assign" in d and not isinstance(d["auto_assign"], bool):
                errors.append(f"line {no}: \"auto_assign\" must be true or false")
            plan.org = line
            continue
        if plan.org is None:
            errors.append(f"line {no}: declare the organization first ({{\"type\": \"organization\", ...}})")
            continue
        if kind == "channel":
            key = _str(d, "key", errors, no)
            if key is not None and not _KEY_RE.match(key):
                errors.append(f"line {no}: channel key {key!r}: use lowercase letters, digits, '-' or '_'")
            if d.get("provider") not in PROVIDERS:
                errors.append(f"line {no}: provider must be one of {', '.join(PROVIDERS)}")
            if key in plan.channels:
                errors.append(f"line {no}: channel {key!r} declared twice")
            if key:
                plan.channels[key] = line
            continue
        if kind == "user":
            email = _str(d, "email", errors, no)
            if email is not None and "@" not in email:
                errors.append(f"line {no}: {email!r} is not an email address")
            if d.get("role") not in ROLES:
                errors.append(f"line {no}: role must be one of {', '.join(ROLES)}")
            perms = d.get("permissions", {})
            if not isinstance(perms, dict):
                errors.append(f"line {no}: \"permissions\" must map channel keys to [\"view\", \"send\"]")
            else:
                for ck, rights in perms.items():
                    if ck not in plan.channels:
                        errors.append(f"line {no}: permission on undeclared channel {ck!r}")
                    if not isinstance(rights, list) or not set(rights) <= {"view", "send"}:
                        errors.append(f"line {no}: permissions of {ck!r} must be a list of \"view\"/\"send\"")
            if email:
                if email.lower() in plan.users:
                    errors.append(f"line {no}: user {email} declared twice")
                plan.users[email.lower()] = line
            continue
        # an event
        at_raw = d.get("at")
        try:
            at = datetime.fromisoformat(str(at_raw))
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError
        except ValueError:
            errors.append(f"line {no}: \"at\" must be an ISO-8601 timestamp with an offset "
                          f"(e.g. 2026-03-02T09:15:00+01:00), got {at_raw!r}")
            continue
        if last_at is not None and at < last_at:
            errors.append(f"line {no}: \"at\" {at_raw} is earlier than the previous event; events must be "
                          "in time order")
        last_at = at
        line.at = at
        for f in EVENT_FIELDS[kind]:
            _str(d, f, errors, no)
        ch = d.get("channel")
        if ch is not None and ch not in plan.channels:
            errors.append(f"line {no}: undeclared channel {ch!r}")
        for who in ("agent", "to"):
            email = d.get(who)
            if isinstance(email, str) and email.lower() not in plan.users:
                errors.append(f"line {no}: undeclared user {email!r} in \"{who}\"")
        mid = d.get("message_id")
        if mid is not None and (not isinstance(mid, str) or not mid):
            errors.append(f"line {no}: \"message_id\" must be a non-empty string")
            mid = None
        if kind == "inbound" and mid is not None and isinstance(ch, str):
            if (ch, mid) in inbound_ids or mid in plan.outbound_ids:
                errors.append(f"line {no}: message id {mid!r} used twice")
            inbound_ids.add((ch, mid))
        if kind in ("reply", "bot_reply") and mid is not None:
            if mid in plan.outbound_ids or (ch, mid) in inbound_ids:
                errors.append(f"line {no}: message id {mid!r} used twice")
            plan.outbound_ids[mid] = str(ch)
        if kind == "status":
            if isinstance(mid, str) and mid not in plan.outbound_ids:
                errors.append(f"line {no}: status of unknown message {mid!r} (it must be the message_id of "
                              "an earlier reply or bot_reply)")
            if str(d.get("status", "")).lower() not in STATUSES:
                errors.append(f"line {no}: status must be one of {', '.join(STATUSES)}")
        if kind == "presence" and str(d.get("state", "")).lower() not in STATES:
            errors.append(f"line {no}: state must be one of {', '.join(STATES)}")
        if kind in ("inbound", "reply", "bot_reply") and isinstance(d.get("text"), str) \
                and len(d["text"]) > 4096 and kind != "inbound":
            errors.append(f"line {no}: text longer than 4096 characters")
        plan.events.append(line)
    if plan.org is None and not errors:
        errors.append("line 1: the file declares no organization")
    if errors:
        shown = errors[:MAX_REPORTED]
        more = f"\n... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        raise InvalidInput("the file has errors; nothing was imported:\n" + "\n".join(shown) + more)
    return plan


class _Replayer:
    def __init__(self, uow: UnitOfWork, plan: _Plan, secret_key: bytes, sha: str, mode: Mode) -> None:
        self.uow = uow
        self.plan = plan
        self.secret_key = secret_key
        self.sha = sha[:12]
        self.org_id = 0
        self.system = Actor.system(0)
        self.channels: dict[str, tuple[int, str]] = {}
        self.actors: dict[str, Actor] = {}
        self.convs: dict[tuple[int, str], int] = {}
        self.outbound: dict[str, tuple[int, int, str]] = {}  # message_id -> (db id, channel id, contact)
        self.mode: Mode = mode
        # lines held back to be ingested as one batch per channel (see ``event``)
        self.pending: dict[int, list[tuple[_Line, InboundMessage | StatusUpdate]]] = {}
        self.pending_convs: dict[tuple[int, str], str] = {}  # (channel id, contact) -> "inbound" | "status"
        self.pending_contacts: dict[tuple[str, str], int] = {}  # (provider, contact) -> channel id
        self.pending_statuses: set[str] = set()  # message ids with a held-back status
        self.messages = 0

    def declare(self) -> None:
        org = self.plan.org
        assert org is not None
        d = org.data
        u = self.uow
        name = d["name"].strip()
        try:
            self.org_id = organization_id_by_name(u, name)
        except NotFound:
            self.org_id = create_organization(u, name, d.get("timezone", "UTC"), d.get("business_hours") or {})
        self.system = Actor.system(self.org_id, "import-events")
        changes = {k: d[k] for k in ("auto_assign", "sla_first_response_ms", "sla_resolution_ms") if k in d}
        if changes:
            update_settings(u, self.system, **changes)
        for key, line in self.plan.channels.items():
            self._at(line, lambda d=line.data, key=key: self.channels.__setitem__(key, (create_channel(
                u, self.system, key=key, provider=d["provider"], name=d.get("name") or key,
                secret_key=self.secret_key).id, d["provider"])))
        for email, line in self.plan.users.items():
            self._at(line, lambda email=email, line=line: self._user(email, line.data))

    def _user(self, email: str, d: dict[str, Any]) -> None:
        u = self.uow
        row = u.session.execute(select(User.id, User.organization_id, User.role).where(User.email == email)
                                ).first()
        if row is not None and row.organization_id != self.org_id:
            raise InvalidInput(f"user {email} already exists in another organization")
        if row is None:
            # active, with a random password nobody ever sees: users that exist for metrics but cannot
            # log in until an admin resets them
            uid = create_user(u, self.org_id, email=email, name=d.get("name") or email.split("@")[0],
                              role=d["role"], secret_key=self.secret_key).user_id
            role = d["role"]
        else:
            uid, role = row.id, row.role
        if isinstance(d.get("max_concurrent"), int):
            set_max_concurrent(u, self.system, uid, d["max_concurrent"])
        for ck, rights in (d.get("permissions") or {}).items():
            grant_channel_permission(u, self.system, user_id=uid, channel_id=self.channels[ck][0],
                                     can_view=True, can_send="send" in rights)
        self.actors[email] = Actor(uid, self.org_id, role, email)

    def _at(self, line: _Line, fn: Any) -> None:
        try:
            fn()
        except SwitchboardError as e:
            raise InvalidInput(f"line {line.no}: {e}; nothing was imported (the file is applied in one "
                               "transaction)") from e
        except DBAPIError as e:
            raise InvalidInput(f"line {line.no}: the database refused it ({e.orig}); nothing was "
                               "imported") from e

    def actor(self, email: str) -> Actor:
        return self.actors[email.lower()]

    def conversation(self, line: _Line) -> int:
        channel_id, provider = self.channels[line.data["channel"]]
        key = (channel_id, line.data["contact"])
        if key not in self.convs:
            self.flush(channel_id)
            conv = self.uow.session.execute(
                select(Conversation.id).join(Contact, Contact.id == Conversation.contact_id).where(
                    Conversation.channel_id == channel_id, Contact.provider == provider,
                    Contact.organization_id == self.org_id, Contact.provider_contact_id == key[1])
            ).scalar()
            if conv is None:
                raise InvalidInput(f"there is no conversation with {key[1]!r} on channel "
                                   f"{line.data['channel']!r} yet (an inbound line must come first)")
            self.convs[key] = int(conv)
        return self.convs[key]

    def flush(self, channel_id: int | None = None) -> None:
        """Ingest the held-back lines of one channel (all channels if None) as one batch each."""
        for ch in [channel_id] if channel_id is not None else list(self.pending):
            batch = self.pending.pop(ch, None)
            if not batch:
                continue
            provider = next(p for c, p in self.channels.values() if c == ch)
            for _, item in batch:
                if isinstance(item, StatusUpdate):
                    self.pending_statuses.discard(item.provider_message_id)
                    self.pending_convs.pop((ch, self.outbound[item.provider_message_id][2]), None)
                else:
                    self.pending_convs.pop((ch, item.contact.provider_contact_id), None)
                    self.pending_contacts.pop((provider, item.contact.provider_contact_id), None)
            last = batch[-1][0]
            self._at(last, lambda ch=ch, batch=batch, last=last: self._ingest(ch, [i for _, i in batch], last.at))

    def _ingest(self, channel_id: int, items: list[InboundMessage | StatusUpdate], now: datetime | None) -> None:
        r = ingest_items(self.uow, channel_id=channel_id, items=items, now=now)
        self.messages += r.messages_created

    def _hold(self, channel_id: int, line: _Line, item: InboundMessage | StatusUpdate) -> None:
        self.pending.setdefault(channel_id, []).append((line, item))

    def event(self, line: _Line) -> None:
        """Apply one event line, or hold it back to be ingested later in a batch.

        ``reorder`` (auto-assignment off): inbound and status lines are held back per channel, for as
        long as no later line touches the same conversation (or, for inbound, the same contact on
        another channel, or for a status, the same message): lines of different conversations do not
        affect each other, so each conversation still sees its lines in file order. ``consecutive``
        (auto-assignment on, where conversations compete for agents): only a run of inbound lines of
        one channel is batched. ``strict``: every line on its own, in file order (used to name the
        exact line after a failure).
        """
        d, at, kind = line.data, line.at, line.type
        assert at is not None
        if kind == "inbound":
            channel_id, provider = self.channels[d["channel"]]
            contact = d["contact"]
            if self.mode == "reorder":
                if self.pending_convs.get((channel_id, contact)) == "status":
                    self.flush(channel_id)
                other = self.pending_contacts.get((provider, contact))
                if other is not None and other != channel_id:
                    self.flush(other)
            elif any(ch != channel_id for ch in self.pending):
                self.flush()
            mid = d.get("message_id") or f"import:{self.sha}:{line.no}"
            self._hold(channel_id, line, InboundMessage(
                mid, ContactRef(contact, display_name=d.get("contact_name")), at, d["text"],
                raw={"import": {"line": line.no}}))
            self.pending_convs[(channel_id, contact)] = "inbound"
            self.pending_contacts[(provider, contact)] = channel_id
            if self.mode == "strict":
                self.flush()
            return
        if kind == "status" and self.mode == "reorder":
            status = STATUSES[d["status"].lower()]
            if status == MessageStatus.SENT:  # the reply line already recorded it as sent
                return
            _, channel_id, contact = self.outbound[d["message_id"]]
            if self.pending_convs.get((channel_id, contact)) == "inbound" or d["message_id"] in self.pending_statuses:
                self.flush(channel_id)
            self._hold(channel_id, line, StatusUpdate(
                d["message_id"], status, at, error_code=d.get("error_code"),  # type: ignore[arg-type]
                error_message=d.get("error_message")))
            self.pending_convs[(channel_id, contact)] = "status"
            self.pending_statuses.add(d["message_id"])
            return
        if self.mode != "reorder":
            self.flush()
        elif "channel" in d and (self.channels[d["channel"]][0], d["contact"]) in self.pending_convs:
            self.flush(self.channels[d["channel"]][0])
        self._at(line, lambda: self._apply(line, d, at, kind))

    def _apply(self, line: _Line, d: dict[str, Any], at: datetime, kind: str) -> None:
        u = self.uow
        if kind == "presence":
            heartbeat(u, self.actor(d["agent"]), state=STATES[d["state"].lower()], now=at)  # type: ignore[arg-type]
        elif kind == "status":
            _, channel_id, _ = self.outbound[d["message_id"]]
            status = STATUSES[d["status"].lower()]
            if status != MessageStatus.SENT:
                ingest_items(u, channel_id=channel_id, now=at, items=[StatusUpdate(
                    d["message_id"], status, at, error_code=d.get("error_code"),  # type: ignore[arg-type]
                    error_message=d.get("error_message"))])
        else:
            conv = self.conversation(line)
            if kind == "accept":
                accept(u, self.actor(d["agent"]), conv, at)
            elif kind == "release":
                release(u, self.actor(d["agent"]), conv, at)
            elif kind == "complete":
                complete(u, self.actor(d["agent"]), conv, at)
            elif kind == "reopen":
                reopen(u, self.actor(d["agent"]), conv, at)
            elif kind == "reassign":
                reassign(u, self.actor(d["agent"]), conv, self.actor(d["to"]).user_id, at)
            elif kind in ("reply", "bot_reply"):
                key = f"import:{self.sha}:{line.no}"
                pmid = d.get("message_id") or key
                author = self.actor(d["agent"]).user_id if kind == "reply" else None
                mid = record_already_sent_reply(u, self.system, conv, d["text"], idempotency_key=key,
                                                provider_message_id=pmid, sent_at=at, author_user_id=author).id
                self.outbound[pmid] = (mid, self.channels[d["channel"]][0], d["contact"])
                self.messages += 1


def import_events(engine: Engine, path: str | Path, secret_key: bytes, *, file_order: bool = False
                  ) -> ImportReport:
    """Validate then replay a JSONL timeline (see module docstring); raises InvalidInput with line numbers.

    Inbound and status lines are ingested in batches, held back past lines of other conversations
    (each conversation still sees its own lines in file order); ``file_order=True`` applies every line
    on its own in file order instead (slower; the same result).
    """
    started = time.perf_counter()
    p = Path(path)
    try:
        content = p.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read {p}: {e.strerror}") from None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{p} is not UTF-8 text (byte {e.start})") from None
    lines = text.splitlines()
    plan = _validate(lines)
    sha = hashlib.sha256(content).hexdigest()
    with UnitOfWork(engine) as check:
        done = check.session.execute(select(AuditLog.organization_id).where(
            AuditLog.action == "import-events", AuditLog.target == sha)).first()
    if done is not None:
        return ImportReport(str(p), sha, len(lines), int(done.organization_id or 0), 0, 0, 0, 0, 0,
                            time.perf_counter() - started, already_imported=True)
    try:
        rep, conv_count = _replay(engine, plan, secret_key, sha, p.name, len(lines),
                                  "strict" if file_order else "reorder")
    except InvalidInput:
        if file_order:
            raise
        # nothing was kept; replay line by line in file order so the error names the first bad line
        rep, conv_count = _replay(engine, plan, secret_key, sha, p.name, len(lines), "strict")
    return ImportReport(str(p), sha, len(lines), rep.org_id, len(plan.channels), len(plan.users),
                        len(plan.events), rep.messages, conv_count, time.perf_counter() - started)


def _replay(engine: Engine, plan: _Plan, secret_key: bytes, sha: str, name: str, n_lines: int,
            mode: Mode) -> tuple[_Replayer, int]:
    """Declare, replay every event and record the import, all in one transaction (or nothing)."""
    with UnitOfWork(engine) as uow:
        rep = _Replayer(uow, plan, secret_key, sha, mode)
        rep.declare()
        if mode == "reorder" and uow.session.execute(
                select(Organization.auto_assign).where(Organization.id == rep.org_id)).scalar():
            rep.mode = "consecutive"  # conversations compete for agents: keep the file's order
        for line in plan.events:
            rep.event(line)
        rep.flush()
        conv_count = uow.session.execute(
            select(func.count()).where(Conversation.organization_id == rep.org_id)).scalar_one()
        uow.session.execute(insert(AuditLog).values(
            organization_id=rep.org_id, action="import-events", target=sha,
            details={"file": name, "lines": n_lines, "events": len(plan.events)}))
        uow.commit()
    return rep, int(conv_count)
