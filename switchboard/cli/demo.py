"""`switchboard demo`: the whole product on embedded defaults, one command, Ctrl-C stops everything.

Starts (or joins) the embedded PostgreSQL, migrates, seeds a demo organization with users, the WhatsApp
and SMS sandbox channels and three history-only channels (Messenger, Instagram, Telegram: paused, their
credentials point at nothing live), replays 30 days of generated history for the dashboards, then runs
as child processes:
a Prefect API server (on the same PostgreSQL), the webhook receiver, the sandbox with simulated
customers, the flow worker and the Streamlit app.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from switchboard.cli.demo_history import HistoryChannel
from switchboard.db.schema import User
from switchboard.errors import NotFound, SwitchboardError
from switchboard.settings import Settings, ensure_local_secret_key, get_settings

DEMO_ORG = "Demo Co"
DEMO_PASSWORD = "switchboard-demo"
DEMO_USERS = (
    ("admin@demo.local", "Ada Admin", "admin"),
    ("manager@demo.local", "Max Manager", "manager"),
    ("alice@demo.local", "Alice Agent", "agent"),
    ("bob@demo.local", "Bob Agent", "agent"),
    ("carol@demo.local", "Carol Agent", "agent"),
    ("dave@demo.local", "Dave Agent", "agent"),
)
# each agent's habit in the generated history (switchboard.cli.demo_history.HABITS)
DEMO_HABITS = {"alice@demo.local": "fast", "bob@demo.local": "slow", "carol@demo.local": "part_time",
               "dave@demo.local": "hands_over"}
HISTORY_DAYS = 30
OFFLINE_URL = "http://127.0.0.1:9"  # the discard port: nothing answers there
SANDBOX_PHONE_ID = "100000000000001"
SANDBOX_WABA_ID = "sandbox-waba"  # the business account whose message templates the sandbox lists
DEMO_TIMEZONE = "Europe/Berlin"
DEMO_HOURS = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
# the history-only channels: created paused (nothing is processed, sent or synced on them, so the
# worker never calls their platforms), read receipts off; their fake credentials point at nothing
OFFLINE_CHANNELS: tuple[tuple[HistoryChannel, dict[str, str]], ...] = (
    (HistoryChannel("messenger", "messenger", "Messenger (history only)", 0.25, "71000"),
     {"page_id": "700000000000001", "page_access_token": "offline-demo-token", "app_secret": "offline-demo",
      "verify_token": "offline-demo", "api_base_url": OFFLINE_URL}),
    (HistoryChannel("instagram", "instagram", "Instagram (history only)", 0.2, "17841", bot_greeting=0.0),
     {"ig_user_id": "178410000000001", "page_access_token": "offline-demo-token", "app_secret": "offline-demo",
      "verify_token": "offline-demo", "api_base_url": OFFLINE_URL}),
    (HistoryChannel("telegram", "telegram", "Telegram (history only)", 0.15, "55500", bot_greeting=0.0),
     {"api_id": "1", "api_hash": "offline-demo"}),
)
# the SMS channel: a `twilio` channel whose API is the sandbox's (under /twilio), with live SMS customers
SMS_KEY = "sms"
SMS_ACCOUNT_SID = "AC" + "5" * 32
SMS_FROM_NUMBER = "+14155550100"
SANDBOX_HISTORY = HistoryChannel("sandbox", "sandbox", "WhatsApp (sandbox)", 0.4, "+49301")


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class Supervisor:
    """The demo's child processes, each the leader of its own process group, output in its own log.

    :meth:`watch` raises when any child exits; :meth:`stop` sends SIGTERM to every child's process
    group (grandchildren included, also those of a child that already exited), waits up to ``grace``
    seconds for the children to exit, then SIGKILLs every group and reaps every child.
    """

    def __init__(self, log_dir: Path, *, grace: float = 15.0) -> None:
        self.log_dir = log_dir
        self.grace = grace
        self.children: list[Child] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def watch(self, interval: float = 1.0) -> None:
        """Return never: raise SwitchboardError naming the first child that exits (and its log)."""
        while True:
            for c in self.children:
                if c.proc.poll() is not None:
                    raise SwitchboardError(f"{c.name} exited with code {c.proc.returncode}; see {c.log}")
            time.sleep(interval)

    def _signal_groups(self, sig: signal.Signals) -> None:
        for c in reversed(self.children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL; every child is reaped on return.

        A SIGINT or SIGTERM meanwhile (a second Ctrl-C) cuts the grace period short instead of
        interrupting the stop and leaving the children running.
        """
        if not self.children:
            return
        hurry = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda signum, frame: hurry.set())
        try:
            self._signal_groups(signal.SIGTERM)
            deadline = time.monotonic() + self.grace
            while (time.monotonic() < deadline and not hurry.is_set()
                   and any(c.proc.poll() is None for c in self.children)):
                time.sleep(0.05)
            self._signal_groups(signal.SIGKILL)  # children past the grace period and their stragglers
            for c in self.children:
                c.proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def seed(settings: Settings, engine: Engine) -> dict[str, str]:
    """Idempotently create the demo organization, users, channel and permissions."""
    from switchboard.auth.users import create_user
    from switchboard.services.channel_lifecycle import pause_channel
    from switchboard.services.channels import (
        channel_credentials,
        create_channel,
        grant_channel_permission,
        list_channels,
        set_channel_credentials,
    )
    from switchboard.services.organizations import create_organization, organization_id_by_name
    from switchboard.services.platform_signals import set_read_receipts
    from switchboard.types import Actor
    from switchboard.uow import UnitOfWork

    key = settings.secret_key_bytes()
    info: dict[str, str] = {}
    with UnitOfWork(engine) as uow:
        try:
            org_id = organization_id_by_name(uow, DEMO_ORG)
        except NotFound:
            org_id = create_organization(uow, DEMO_ORG, DEMO_TIMEZONE, DEMO_HOURS)
        system = Actor.system(org_id, "demo")
        found = [c for c in list_channels(uow, org_id) if c.key == "sandbox"]  # a second run: kept as it is
        channel = found[0] if found else create_channel(
            uow, system, key="sandbox", provider="sandbox", name="WhatsApp (sandbox)",
            secret_key=key, external_id=SANDBOX_PHONE_ID,
            credentials={
                "access_token": secrets.token_urlsafe(16),
                "app_secret": secrets.token_urlsafe(24),
                "verify_token": secrets.token_urlsafe(12),
                "phone_number_id": SANDBOX_PHONE_ID,
                "waba_id": SANDBOX_WABA_ID,
                "api_base_url": f"http://127.0.0.1:{settings.sandbox_port}",
            },
        )
        current = channel_credentials(uow, system, channel.id, key)
        if current.get("waba_id") != SANDBOX_WABA_ID:  # a demo home from before templates were synced
            set_channel_credentials(uow, system, channel.id, key, {**current, "waba_id": SANDBOX_WABA_ID})
        sms_found = next((c for c in list_channels(uow, org_id) if c.key == SMS_KEY), None)
        sms = sms_found or create_channel(
            uow, system, key=SMS_KEY, provider="twilio", name="SMS (sandbox)", secret_key=key,
            credentials={"account_sid": SMS_ACCOUNT_SID, "auth_token": secrets.token_urlsafe(24),
                         "from_number": SMS_FROM_NUMBER,
                         "api_base_url": f"http://127.0.0.1:{settings.sandbox_port}/twilio"})
        offline = []
        for spec, fake in OFFLINE_CHANNELS:
            view = create_channel(uow, system, key=spec.key, provider=spec.provider, name=spec.name,
                                  secret_key=key, credentials=fake)
            pause_channel(uow, system, view.id)
            set_read_receipts(uow, system, view.id, enabled=False)
            offline.append(view.id)
        existing = set(uow.session.execute(select(User.email)).scalars())
        if sms_found is None:  # a demo home from before SMS: its agents get the new channel too
            for user_id in uow.session.execute(select(User.id).where(
                    User.organization_id == org_id, User.role == "agent")).scalars():
                grant_channel_permission(uow, system, user_id=user_id, channel_id=sms.id, can_view=True,
                                         can_send=True)
        for email, name, role in DEMO_USERS:
            if email in existing:
                continue  # already seeded
            created = create_user(uow, org_id, email=email, name=name, role=role, secret_key=key,
                                  password=DEMO_PASSWORD)
            if role == "agent":
                for channel_id in (channel.id, sms.id, *offline):
                    grant_channel_permission(uow, system, user_id=created.user_id, channel_id=channel_id,
                                             can_view=True, can_send=True)
        creds = channel_credentials(uow, system, channel.id, key)
        sms_creds = channel_credentials(uow, system, sms.id, key)
        uow.commit()
    info["channel_id"] = str(channel.id)
    info["webhook_url"] = channel.webhook_url(settings.public_base_url)
    info["app_secret"] = creds["app_secret"]
    info["access_token"] = creds["access_token"]
    info["sms_channel_id"] = str(sms.id)
    info["sms_webhook_url"] = sms.webhook_url(settings.public_base_url)
    info["sms_auth_token"] = sms_creds["auth_token"]
    return info


def known_customers(engine: Engine, channel_id: int, path: Path) -> Path:
    """Write the sandbox channel's customers who wrote within the last 24 hours (the imported history,
    earlier demo runs) as ``{phone: unix time}``: a fresh sandbox then keeps their window open, as the
    platform would."""
    from switchboard.clock import utcnow
    from switchboard.db.schema import Contact, Conversation

    since = utcnow() - timedelta(hours=24)
    with engine.connect() as con:
        rows = con.execute(select(Contact.provider_contact_id, Conversation.last_inbound_at)
                           .join(Conversation, Conversation.contact_id == Contact.id)
                           .where(Conversation.channel_id == channel_id, Conversation.last_inbound_at >= since))
        path.write_text(json.dumps({str(r.provider_contact_id).lstrip("+"): r.last_inbound_at.timestamp()
                                    for r in rows}))
    return path


def sync_sandbox_templates(settings: Settings, engine: Engine, channel_id: int) -> str:
    """Fetch the sandbox's template catalogue once at start (the worker then syncs it hourly)."""
    from connectors.base import ConnectorError
    from switchboard.workflows.connector_cache import ConnectorCache
    from switchboard.workflows.templates import sync_channel_templates

    connectors = ConnectorCache(engine, settings.secret_key_bytes())
    try:
        result = sync_channel_templates(engine, connectors, channel_id)
    except ConnectorError as exc:
        return f"template sync failed: {exc}"
    finally:
        connectors.close()
    return f"{result.inserted} added, {result.updated} updated, {result.removed} removed"


def import_history(settings: Settings, engine: Engine, *, days: int = HISTORY_DAYS) -> str | None:
    """Replay 30 generated days of demo history on every demo channel once, so dashboards have data
    from the start (deterministic: seeded, up to now)."""
    from switchboard.cli.demo_history import write_timeline
    from switchboard.importer import import_events

    marker = settings.home / "demo-history-imported"
    if marker.exists():
        return None
    path = write_timeline(
        settings.home / "demo_history.jsonl", org=DEMO_ORG, timezone=DEMO_TIMEZONE,
        business_hours=DEMO_HOURS, channels=[SANDBOX_HISTORY, *(c for c, _ in OFFLINE_CHANNELS)],
        users=list(DEMO_USERS), habits=DEMO_HABITS, days=days,
    )
    report = import_events(engine, path, settings.secret_key_bytes())
    marker.write_text("ok\n")
    return report.summary()


def _wait_http(url: str, timeout: float, child: Child | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.proc.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def prefect_database_url(sync_url: str) -> str:
    """The asyncpg URL of a `prefect` database on the same server as Switchboard's database."""
    u = make_url(sync_url)
    return u.set(drivername="postgresql+asyncpg", database="prefect").render_as_string(hide_password=False)


def demo_home(*, fresh: bool = False) -> tuple[Settings, bool]:
    """The demo's settings with its secret key (generated into SWITCHBOARD_HOME when missing; True
    then). ``fresh`` deletes the home first, key file included: the settings are read again, so a new
    key is written rather than the deleted file's key kept in memory (the next start would not find it)."""
    settings = get_settings()
    if fresh and settings.home.exists():
        shutil.rmtree(settings.home)
        get_settings.cache_clear()
        settings = get_settings()
    return ensure_local_secret_key(settings)


def run_demo(*, fresh: bool = False, customers: int = 6, speed: float = 1.0) -> None:
    started = time.monotonic()
    settings, created_key = demo_home(fresh=fresh)
    settings.home.mkdir(parents=True, exist_ok=True)
    log_dir = settings.home / "logs"
    log_dir.mkdir(exist_ok=True)

    from switchboard.db.engine import database_url, ensure_database, make_engine
    from switchboard.db.migrate import upgrade

    print("Switchboard demo")
    if created_key:
        print(f"  generated SWITCHBOARD_SECRET_KEY into {settings.home / 'secret.key'} (keep it: it encrypts secrets)")
    url = database_url(settings)
    upgrade(url)
    print(f"  database ready ({'external' if settings.database_url else 'embedded PostgreSQL under ' + str(settings.pg_data_dir)})")
    engine = make_engine(url, pool_size=2, max_overflow=2)
    from switchboard.services.runs import mark_interrupted
    from switchboard.uow import UnitOfWork

    with UnitOfWork(engine) as uow:  # runs of a previous demo that was killed mid-run
        mark_interrupted(uow, older_than=timedelta(0))
        uow.commit()
    env = dict(os.environ)
    env.update({
        "SWITCHBOARD_HOME": str(settings.home),
        "SWITCHBOARD_SECRET_KEY": settings.switchboard_secret_key or "",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{settings.prefect_port}/api",
        "PREFECT_HOME": str(settings.home / "prefect"),
        "PYTHONUNBUFFERED": "1",
    })
    prefect_env = dict(env)
    if settings.database_url is None:
        admin = make_url(url).set(database="postgres").render_as_string(hide_password=False)
        ensure_database(admin, "prefect")
        prefect_env["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database_url(url)
    else:
        print("  note: with DATABASE_URL set, the demo's Prefect server keeps its own SQLite database")
    prefect_env.pop("PREFECT_API_URL", None)

    sb = [sys.executable, "-m", "switchboard.cli.main"]
    supervisor = Supervisor(log_dir)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)  # `kill` stops the demo as cleanly as Ctrl-C
    signal.signal(signal.SIGINT, _terminate)  # even when started in the background
    try:
        prefect_cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                       "--port", str(settings.prefect_port)]
        prefect = supervisor.spawn("prefect-server", prefect_cmd, prefect_env)  # starts while the history loads
        info = seed(settings, engine)
        receiver = supervisor.spawn("receiver", sb + ["serve"], env)  # these start while the history loads
        app = supervisor.spawn("app", sb + ["app"], env)
        history = import_history(settings, engine)
        if history:
            print(f"  imported demo history: {history}")
        from warehouse.build import build

        report = build(url, settings.warehouse_file, data_path=settings.warehouse_data_path,
                       nice=settings.warehouse_build_nice)
        print(f"  warehouse built at {report.path} in {report.seconds:.1f} s (then every 5 minutes by the worker)")
        supervisor.spawn("sandbox", sb + [  # after the history: it knows who wrote within 24 hours
            "sandbox", "--webhook-url", info["webhook_url"], "--app-secret", info["app_secret"],
            "--access-token", info["access_token"], "--phone-number-id", SANDBOX_PHONE_ID,
            "--customers", str(customers), "--speed", str(speed), "--waba-id", SANDBOX_WABA_ID,
            "--sms-auth-token", info["sms_auth_token"], "--sms-account-sid", SMS_ACCOUNT_SID,
            "--sms-from-number", SMS_FROM_NUMBER, "--sms-webhook-url", info["sms_webhook_url"],
            "--sms-customers", str(max(1, customers // 2)) if customers else "0",
            "--known-customers", str(known_customers(engine, int(info["channel_id"]),
                                                     settings.home / "sandbox-customers.json"))], env)
        print("  starting the Prefect server (about 10 s)…")
        if not _wait_http(f"http://127.0.0.1:{settings.prefect_port}/api/health", 90, prefect):
            raise SwitchboardError(f"the Prefect server did not start; see {prefect.log}")
        supervisor.spawn("worker", sb + ["worker"], env)
        if not _wait_http(f"http://127.0.0.1:{settings.receiver_port}/health", 30, receiver):
            raise SwitchboardError(f"the webhook receiver did not start; see {receiver.log}")
        _wait_http(f"http://127.0.0.1:{settings.app_port}/_stcore/health", 60, app)
        if _wait_http(f"http://127.0.0.1:{settings.sandbox_port}/health", 30):
            print(f"  sandbox message templates: {sync_sandbox_templates(settings, engine, int(info['channel_id']))}")

        print(f"  ready in {time.monotonic() - started:.0f} s")
        print()
        print(f"  Inbox (Streamlit):   http://127.0.0.1:{settings.app_port}")
        print(f"  Prefect UI:          http://127.0.0.1:{settings.prefect_port}")
        print(f"  Webhook receiver:    http://127.0.0.1:{settings.receiver_port}/health")
        print(f"  Sandbox (WhatsApp):  http://127.0.0.1:{settings.sandbox_port}/_sandbox/sent")
        print(f"  Sandbox (SMS):       http://127.0.0.1:{settings.sandbox_port}/twilio/_sandbox/sent")
        print()
        print("  Log in as any of:")
        for email, name, role in DEMO_USERS:
            habit = DEMO_HABITS.get(email, "").replace("_", " ")
            print(f"    {email:<20} {name} ({role}{', ' + habit + ' in the history' if habit else ''})")
        print(f"  password: {DEMO_PASSWORD}")
        print("  First login enrolls TOTP: scan the QR code with an authenticator app, or get the current")
        print("  code with:  .venv/bin/switchboard totp-code alice@demo.local")
        print(f"  Logs: {log_dir}    Stop: Ctrl-C")
        sys.stdout.flush()
        supervisor.watch()
    except KeyboardInterrupt:
        print("\nstopping…")
    finally:
        supervisor.stop()
        engine.dispose()
        print("stopped every process the demo started")
