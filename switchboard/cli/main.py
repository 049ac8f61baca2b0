"""The `switchboard` command line: operators' and admins' entry point.

Each command translates arguments, calls one service (or starts one process) and prints the result.
Errors of the product (:class:`switchboard.errors.SwitchboardError`, settings errors) are printed as
one clear line with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from switchboard.cli.operations import add_channel_commands, add_status_command
from switchboard.cli.privacy import add_contact_commands
from switchboard.errors import SwitchboardError
from switchboard.settings import SettingsError, get_settings

DEFAULT_ORG = "Switchboard"


def _engine() -> Any:
    from switchboard.db.engine import make_engine

    return make_engine(pool_size=2, max_overflow=2)


def _org_id(uow: Any, name: str | None) -> int:
    """The organization named ``--org``: a misspelt name fails with the list of names instead of
    creating a new organization (``org create`` creates one). Without ``--org``: the only
    organization; several need ``--org``; with none yet, the default organization is made (a first
    run's convenience)."""
    from switchboard.cli.operations import organization_for_listing
    from switchboard.services.organizations import create_organization

    found = organization_for_listing(uow, name)
    if found is not None:
        return found
    return create_organization(uow, DEFAULT_ORG, get_settings().default_timezone)


def cmd_org_create(args: argparse.Namespace) -> None:
    """Create an organization (its timezone checked) and, with ``--admin-email``, invite its first
    admin: the one-time link is printed (and e-mailed when SMTP is configured)."""
    from switchboard.auth.invites import invite_user
    from switchboard.services.organizations import create_organization
    from switchboard.types import Actor
    from switchboard.uow import UnitOfWork

    settings = get_settings()
    timezone = args.timezone or settings.default_timezone
    with UnitOfWork(_engine()) as uow:
        org_id = create_organization(uow, args.name, timezone)
        invite = None
        if args.admin_email:
            invite = invite_user(uow, Actor.system(org_id, "cli"), email=args.admin_email,
                                 name=args.admin_name or args.admin_email.split("@")[0], role="admin",
                                 settings=settings)
        uow.commit()
    print(f"organization {args.name.strip()!r} id {org_id} (timezone {timezone})")
    if invite is None:
        print(f"invite its first admin: `switchboard org create` with --admin-email, or `switchboard user create "
              f"--org {args.name.strip()!r} --role admin …`")
        return
    how = "e-mailed to" if invite.emailed else "for"
    print(f"first admin invited: {invite.email} (link {how} them, valid until {invite.expires_at:%Y-%m-%d %H:%M} UTC)")
    if not invite.emailed:
        print(f"invite link (shown once): {invite.link}")
        if invite.mail_error:
            print(f"the e-mail could not be sent: {invite.mail_error}")


# --- commands ----------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    from switchboard.db.engine import database_url
    from switchboard.db.migrate import current_revision, upgrade

    url = database_url()
    upgrade(url)
    print(f"database is at revision {current_revision(url)}")


def cmd_secret_key(args: argparse.Namespace) -> None:
    from switchboard.settings import new_secret_key

    print(new_secret_key())


def cmd_secret_rotate(args: argparse.Namespace) -> None:
    from switchboard.rotate import decode_key, rotate_secret_key

    n = rotate_secret_key(_engine(), decode_key(args.old_key), get_settings().secret_key_bytes())
    print(f"re-encrypted {n} secrets with the current SWITCHBOARD_SECRET_KEY")


def cmd_user_create(args: argparse.Namespace) -> None:
    from switchboard.auth.users import create_user
    from switchboard.uow import UnitOfWork

    with UnitOfWork(_engine()) as uow:
        org_id = _org_id(uow, args.org)
        created = create_user(uow, org_id, email=args.email, name=args.name, role=args.role,
                              secret_key=get_settings().secret_key_bytes(), password=args.password)
        uow.commit()
    print(f"created {args.role} {created.email} (id {created.user_id})")
    if created.password:
        print(f"password (shown once): {created.password}")
    print(f"TOTP secret (shown once): {created.totp_secret}")
    print(f"otpauth URI: {created.otpauth_uri}")


def cmd_totp_code(args: argparse.Namespace) -> None:
    """Demo/testing aid: the current TOTP code of a user (needs the secret key)."""
    from switchboard.auth.users import current_totp_code
    from switchboard.uow import UnitOfWork

    with UnitOfWork(_engine()) as uow:
        print(current_totp_code(uow, args.email, get_settings().secret_key_bytes()))


def _parse_credentials(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SwitchboardError(f"--credential {pair!r}: use KEY=VALUE")
        out[key] = value
    return out


def _positive_rate(value: str) -> float:
    """``--rate-limit``: a number of messages per second above 0 (argparse exits 2 otherwise)."""
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(rate) or rate <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be more than 0 messages per second")
    return rate


def cmd_channel_add(args: argparse.Namespace) -> None:
    from switchboard.services.channels import create_channel
    from switchboard.types import Actor
    from switchboard.uow import UnitOfWork

    settings = get_settings()
    creds = _parse_credentials(args.credential or [])
    with UnitOfWork(_engine()) as uow:
        org_id = _org_id(uow, args.org)
        ch = create_channel(uow, Actor.system(org_id, "cli"), key=args.key, provider=args.provider,
                            name=args.name or args.key, secret_key=settings.secret_key_bytes(), credentials=creds,
                            external_id=args.external_id, rate_limit_per_second=args.rate_limit)
        uow.commit()
    print(f"channel {ch.key} ({ch.provider}) id {ch.id}")
    print(f"webhook URL: {ch.webhook_url(settings.public_base_url)}")


def cmd_channel_sync_templates(args: argparse.Namespace) -> None:
    from switchboard.errors import NotFound
    from switchboard.services.channels import list_channels
    from switchboard.uow import UnitOfWork
    from switchboard.workflows.connector_cache import ConnectorCache
    from switchboard.workflows.templates import sync_channel_templates

    engine = _engine()
    with UnitOfWork(engine) as uow:
        org_id = _org_id(uow, args.org)
        found = [c for c in list_channels(uow, org_id) if c.key == args.key]
        uow.commit()
    if not found:
        raise NotFound(f"no channel {args.key!r} in this organization (see `switchboard channel list`)")
    connectors = ConnectorCache(engine, get_settings().secret_key_bytes())
    try:
        result = sync_channel_templates(engine, connectors, found[0].id)
    finally:
        connectors.close()
    print(f"templates of {args.key}: {result.inserted} new, {result.updated} updated, {result.removed} removed")


def cmd_api_key_create(args: argparse.Namespace) -> None:
    from switchboard.services.api_keys import create_api_key
    from switchboard.types import Actor
    from switchboard.uow import UnitOfWork

    with UnitOfWork(_engine()) as uow:
        org_id = _org_id(uow, args.org)
        created = create_api_key(uow, Actor.system(org_id, "cli"), name=args.name, scopes=args.scope,
                                 channel_keys=args.channel, expires_in_days=args.expires_in_days,
                                 rate_limit_per_minute=args.rate_limit)
        uow.commit()
    v = created.view
    print(f"API key {v.prefix} {v.name!r} (id {v.id}): {', '.join(v.scopes)}; "
          f"channels: {', '.join(v.channel_keys) if v.channel_keys is not None else 'all'}; "
          f"expires: {v.expires_at.isoformat() if v.expires_at else 'never'}")
    print(f"key: {created.key}")
    print("the key is shown only now: store it in your secret manager")


def cmd_api_key_list(args: argparse.Namespace) -> None:
    from switchboard.services.api_keys import list_api_keys
    from switchboard.types import Actor
    from switchboard.uow import UnitOfWork

    with UnitOfWork(_engine()) as uow:
        keys = list_api_keys(uow, Actor.system(_org_id(uow, args.org), "cli"))
        uow.commit()
    if not keys:
        print("no API keys yet: create one with `switchboard api-key create`")
    for k in keys:
        used = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
        channels = ",".join(k.channel_keys) if k.channel_keys is not None else "all"
        print(f"{k.id:>4}  {k.prefix:<16} {k.status():<8} {k.name:<24} {','.join(k.scopes)}  channels={channels}  "
              f"last used {used}")


def cmd_api_key_revoke(args: argparse.Namespace) -> None:
    from switchboard.services.api_keys import api_key_by_prefix, revoke_api_key
    from switchboard.types import Actor
    from switchboard.uow import UnitOfWork

    with UnitOfWork(_engine()) as uow:
        actor = Actor.system(_org_id(uow, args.org), "cli")
        key_id = int(args.key) if args.key.isdigit() else api_key_by_prefix(uow, actor, args.key).id
        v = revoke_api_key(uow, actor, key_id)
        uow.commit()
    print(f"API key {v.prefix} {v.name!r} revoked at {v.revoked_at.isoformat() if v.revoked_at else '?'}")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from switchboard.db.engine import database_url

    settings = get_settings()
    settings.secret_key_bytes()  # fail early and clearly
    if settings.database_url is None:
        os.environ["DATABASE_URL"] = database_url(settings)  # worker processes join the same server
    uvicorn.run("switchboard.http.receiver:app_from_settings", factory=True, workers=args.workers, loop="uvloop",
                http="httptools",
                host=args.host or settings.receiver_host, port=args.port or settings.receiver_port,
                log_level="warning", access_log=False)


def cmd_worker(args: argparse.Namespace) -> None:
    from pipelines.worker import run_worker

    get_settings().secret_key_bytes()  # fail early and clearly
    run_worker()


def cmd_deploy(args: argparse.Namespace) -> None:
    from pipelines.deploy import deploy

    get_settings().secret_key_bytes()  # the same environment the workers will need
    done = deploy(args.pool, args.work_queue)
    for d in done:
        print(f"deployment {d.name}: every {d.interval_seconds} s, {d.entrypoint}")
    print(f"{len(done)} deployments on work pool {args.pool!r}; run them with: prefect worker start --pool {args.pool}")


def app_entry() -> Path:
    """The Streamlit entrypoint, found through the ``app`` package wherever it is installed."""
    import app

    return Path(app.__file__).resolve().parent / "main.py"


# The app's server settings, given as flags so they hold wherever the package is installed (the repo's
# .streamlit/config.toml says the same for `streamlit run` by hand): XSRF protection on, CORS protection on
# (no cross-origin requests), tracebacks never shown in the browser, no usage statistics.
STREAMLIT_OPTIONS = {
    "server.headless": "true",
    "server.enableXsrfProtection": "true",
    "server.enableCORS": "true",
    "browser.gatherUsageStats": "false",
    "client.toolbarMode": "minimal",
    "client.showErrorDetails": "type",
}


def streamlit_command(port: int, host: str) -> list[str]:
    flags = [arg for name, value in STREAMLIT_OPTIONS.items() for arg in (f"--{name}", value)]
    return [sys.executable, "-m", "streamlit", "run", str(app_entry()), "--server.port", str(port),
            "--server.address", host, *flags]


def cmd_app(args: argparse.Namespace) -> None:
    raise SystemExit(subprocess.call(streamlit_command(args.port or get_settings().app_port, args.host)))


def cmd_sandbox(args: argparse.Namespace) -> None:
    from connectors.sandbox import SandboxConfig, run_sandbox

    settings = get_settings()
    try:
        known = json.loads(Path(args.known_customers).read_text()) if args.known_customers else {}
        if not isinstance(known, dict):
            raise ValueError(f"{args.known_customers}: expected a JSON object {{phone: unix time}}")
        config = SandboxConfig(
            phone_number_id=args.phone_number_id,
            access_token=args.access_token,
            app_secret=args.app_secret,
            webhook_url=args.webhook_url,
            customers=args.customers,
            speed=args.speed,
            waba_id=args.waba_id,
            enforce_window=not args.no_enforce,
            enforce_templates=not args.no_enforce,
            known_customers={str(k): float(v) for k, v in known.items()},
            sms_auth_token=args.sms_auth_token or "",
            sms_account_sid=args.sms_account_sid,
            sms_from_number=args.sms_from_number,
            sms_webhook_url=args.sms_webhook_url or "",
            sms_customers=args.sms_customers,
            base_url=f"http://{args.host}:{args.port or settings.sandbox_port}",
        )
    except (ValueError, OSError) as exc:
        raise SwitchboardError(f"sandbox: {exc}") from None
    run_sandbox(config, args.host, args.port or settings.sandbox_port)


def cmd_warehouse_build(args: argparse.Namespace) -> None:
    from switchboard.db.engine import database_url
    from warehouse.build import BuildError, build

    settings = get_settings()
    try:
        report = build(database_url(settings), settings.warehouse_file, full=args.full,
                       data_path=settings.warehouse_data_path, nice=settings.warehouse_build_nice)
    except BuildError as exc:
        raise SwitchboardError(f"warehouse build failed: {exc}") from None
    kind = "full" if report.full else "incremental"
    print(f"{kind} build of {report.path} in {report.seconds:.2f} s")
    for table, n in sorted(report.rows_extracted.items()):
        print(f"  extracted {n:>10,} rows from {table}")
    print(f"  built {len(report.models_built)} models")


def cmd_import_events(args: argparse.Namespace) -> None:
    from switchboard.importer import import_events

    path = Path(args.file)
    if not path.is_file():
        raise SwitchboardError(f"{path}: no such file")
    report = import_events(_engine(), path, get_settings().secret_key_bytes())
    print(report.summary())


def cmd_demo(args: argparse.Namespace) -> None:
    from switchboard.cli.demo import run_demo

    run_demo(fresh=args.fresh, customers=args.customers, speed=args.speed)


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description="Switchboard: unified social inbox.")
    sub = p.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations (idempotent)").set_defaults(func=cmd_db_upgrade)

    sub.add_parser("secret-key", help="print a new SWITCHBOARD_SECRET_KEY").set_defaults(func=cmd_secret_key)
    secret = sub.add_parser("secret", help="secret key management").add_subparsers(dest="secret_command", required=True)
    rot = secret.add_parser("rotate", help="re-encrypt secrets from --old-key to the current key")
    rot.add_argument("--old-key", required=True)
    rot.set_defaults(func=cmd_secret_rotate)

    org = sub.add_parser("org", help="organizations").add_subparsers(dest="org_command", required=True)
    oc = org.add_parser("create", help="create an organization (fails if the name exists)")
    oc.add_argument("name")
    oc.add_argument("--timezone", help="IANA timezone, e.g. Europe/Berlin (default SWITCHBOARD_DEFAULT_TIMEZONE)")
    oc.add_argument("--admin-email", help="invite the organization's first admin (prints the one-time link)")
    oc.add_argument("--admin-name", help="the first admin's name (default: from the e-mail address)")
    oc.set_defaults(func=cmd_org_create)

    user = sub.add_parser("user", help="users").add_subparsers(dest="user_command", required=True)
    uc = user.add_parser("create", help="create a user; prints the TOTP secret once")
    uc.add_argument("--email", required=True)
    uc.add_argument("--name", required=True)
    uc.add_argument("--role", required=True, choices=["admin", "manager", "agent"])
    uc.add_argument("--password", help="at least 10 characters; generated and printed if omitted")
    uc.add_argument("--org", help=f"organization name (default {DEFAULT_ORG!r})")
    uc.set_defaults(func=cmd_user_create)

    tc = sub.add_parser("totp-code", help="print a user's current TOTP code (demo and testing aid)")
    tc.add_argument("email")
    tc.set_defaults(func=cmd_totp_code)

    ch = sub.add_parser("channel", help="channels").add_subparsers(dest="channel_command", required=True)
    ca = ch.add_parser("add", help="connect a channel; prints its webhook URL")
    ca.add_argument("--key", required=True, help="short name, e.g. wa-main")
    ca.add_argument("--provider", required=True,
                    choices=["whatsapp", "messenger", "instagram", "telegram", "sandbox", "twilio", "email"])
    ca.add_argument("--name")
    ca.add_argument("--external-id", help="phone-number id / page id / IG account id")
    ca.add_argument("--credential", action="append", metavar="KEY=VALUE",
                    help="repeatable: access_token=…, app_secret=…, verify_token=…")
    ca.add_argument("--rate-limit", type=_positive_rate, default=80.0,
                    help="messages per second, more than 0; fractions allowed, e.g. 0.5 (default 80)")
    ca.add_argument("--org", help=f"organization name (default {DEFAULT_ORG!r})")
    ca.set_defaults(func=cmd_channel_add)
    add_channel_commands(ch, _positive_rate)  # list, update, test, pause, resume, rename, remove
    st = ch.add_parser("sync-templates", help="fetch a WhatsApp channel's message templates now")
    st.add_argument("key", help="the channel's key, e.g. wa-main")
    st.add_argument("--org", help=f"organization name (default {DEFAULT_ORG!r})")
    st.set_defaults(func=cmd_channel_sync_templates)

    ak = sub.add_parser("api-key", help="HTTP API keys").add_subparsers(dest="api_key_command", required=True)
    akc = ak.add_parser("create", help="create an API key; prints it once (a line `key: …`)")
    akc.add_argument("--name", required=True, help="what uses the key, e.g. 'shop orders'")
    akc.add_argument("--scope", action="append", required=True,
                     help="repeatable: messages:send, messages:read, conversations:read, conversations:write, "
                          "contacts:read, webhooks:manage")
    akc.add_argument("--channel", action="append", metavar="KEY", help="repeatable: only these channels (default all)")
    akc.add_argument("--expires-in-days", type=int, help="the key stops working after this many days (default never)")
    akc.add_argument("--rate-limit", type=int, default=600, help="requests per minute (default 600)")
    akc.add_argument("--org", help=f"organization name (default {DEFAULT_ORG!r})")
    akc.set_defaults(func=cmd_api_key_create)
    akl = ak.add_parser("list", help="the organization's API keys with their status and last use")
    akl.add_argument("--org", help=f"organization name (default {DEFAULT_ORG!r})")
    akl.set_defaults(func=cmd_api_key_list)
    akr = ak.add_parser("revoke", help="revoke an API key (by id or prefix); it stops working at once")
    akr.add_argument("key", help="the key's id or its prefix, e.g. sb_live_ab12cd")
    akr.add_argument("--org", help=f"organization name (default {DEFAULT_ORG!r})")
    akr.set_defaults(func=cmd_api_key_revoke)

    sv = sub.add_parser("serve", help="webhook receiver + GET /health + the HTTP API under /api")
    sv.add_argument("--host")
    sv.add_argument("--port", type=int)
    sv.add_argument("--workers", type=int, default=1, help="receiver processes (default 1)")
    sv.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="serve the Prefect flows with their schedules").set_defaults(func=cmd_worker)
    add_status_command(sub)
    add_contact_commands(sub)  # contact erase
    de = sub.add_parser("deploy", help="register every scheduled flow as a Prefect deployment on a work pool")
    de.add_argument("--pool", default="switchboard", help="work pool, created (type process) if missing")
    de.add_argument("--work-queue", help="work queue of the pool (default: the pool's default queue)")
    de.set_defaults(func=cmd_deploy)

    ap = sub.add_parser("app", help="the Streamlit app")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.set_defaults(func=cmd_app)

    sb = sub.add_parser("sandbox", help="local fake of the WhatsApp Cloud API (and Twilio SMS) with simulated customers")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int)
    sb.add_argument("--webhook-url", required=True, help="the sandbox channel's webhook URL")
    sb.add_argument("--app-secret", required=True)
    sb.add_argument("--access-token", default="sandbox-token")
    sb.add_argument("--phone-number-id", default="100000000000001")
    sb.add_argument("--customers", type=int, default=0)
    sb.add_argument("--speed", type=float, default=1.0)
    sb.add_argument("--waba-id", default="sandbox-waba", help="the business account whose templates it lists")
    sb.add_argument("--no-enforce", action="store_true",
                    help="accept free text outside the 24 h window and any template (the platform does not)")
    sb.add_argument("--known-customers", metavar="JSON_FILE",
                    help='customers who wrote before the sandbox started: {"<phone>": <unix time>, …}')
    sb.add_argument("--sms-auth-token", help="serve SMS too: the Twilio API under /twilio, with this auth token")
    sb.add_argument("--sms-account-sid", default="AC" + "0" * 32)
    sb.add_argument("--sms-from-number", default="+14155550100", help="the business's SMS number")
    sb.add_argument("--sms-webhook-url", help="the twilio channel's webhook URL (SMS customers write there)")
    sb.add_argument("--sms-customers", type=int, default=0, help="simulated SMS customers")
    sb.set_defaults(func=cmd_sandbox)

    wh = sub.add_parser("warehouse", help="DuckDB warehouse").add_subparsers(dest="wh_command", required=True)
    wb = wh.add_parser("build", help="extract and build the marts (incremental unless --full)")
    wb.add_argument("--full", action="store_true")
    wb.set_defaults(func=cmd_warehouse_build)

    ie = sub.add_parser("import-events", help="replay a JSONL timeline through the services")
    ie.add_argument("file")
    ie.set_defaults(func=cmd_import_events)

    dm = sub.add_parser("demo", help="everything on embedded defaults")
    dm.add_argument("--fresh", action="store_true", help="wipe SWITCHBOARD_HOME first")
    dm.add_argument("--customers", type=int, default=6)
    dm.add_argument("--speed", type=float, default=1.0)
    dm.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (SwitchboardError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        from switchboard.db.engine import database_problem

        reason = database_problem(exc)
        if reason is None:
            raise
        print(f"error: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main(sys.argv[1:])
