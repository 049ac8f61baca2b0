"""CLI commands of an organization's channel lifecycle and the operator's `switchboard status`.

`channel list|update|test|pause|resume|rename|remove` act in ONE organization (``--org NAME``,
required when there are several); `status` shows the whole installation (operators only: it is never
shown on a page). Registered by :func:`add_channel_commands` and :func:`add_status_command`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from switchboard.errors import InvalidInput, NotFound
from switchboard.settings import get_settings

ORG_HELP = "organization name (required when there are several)"


def organization_for_listing(uow: Any, name: str | None) -> int | None:
    """The organization a command works in: the one named ``--org``; without it, the only one (None
    when there is none yet); several without ``--org`` is an error listing their names."""
    from sqlalchemy import select

    from switchboard.db.schema import Organization
    from switchboard.services.organizations import organization_id_by_name

    if name is not None:
        return organization_id_by_name(uow, name)
    rows = uow.session.execute(select(Organization.id, Organization.name).order_by(Organization.name).limit(21)).all()
    if len(rows) > 1:
        listed = ", ".join(repr(r.name) for r in rows[:20]) + (", …" if len(rows) > 20 else "")
        raise InvalidInput(f"there are several organizations: name one with --org ({listed})")
    return int(rows[0].id) if rows else None


def _engine() -> Any:
    from switchboard.cli.main import _engine as engine

    return engine()


def cmd_channel_list(args: argparse.Namespace) -> None:
    from switchboard.services.channel_lifecycle import all_channels
    from switchboard.types import Actor
    from switchboard.uow import UnitOfWork

    settings = get_settings()
    with UnitOfWork(_engine()) as uow:
        org_id = organization_for_listing(uow, args.org)
        channels = [] if org_id is None else all_channels(uow, Actor.system(org_id, "cli"))
    if not channels:
        print("no channels yet: add one with `switchboard channel add`")
    for ch in channels:
        url = "(removed: webhooks answered 410)" if ch.status == "removed" else ch.webhook_url(settings.public_base_url)
        err = f"  last error: {ch.last_error}" if ch.last_error else ""
        print(f"{ch.id:>4}  {ch.key:<20} {ch.provider:<10} {ch.status:<7} {url}{err}")


def _on_channel(args: argparse.Namespace, change: Callable[..., Any], *extra: Any, **kw: Any) -> Any:
    """Run ``change(uow, actor, channel_id, *extra, **kw)`` on the channel ``args.key`` of ``--org``,
    commit once, return its result."""
    from switchboard.services.channel_lifecycle import channel_by_key
    from switchboard.types import Actor
    from switchboard.uow import UnitOfWork

    with UnitOfWork(_engine()) as uow:
        org_id = organization_for_listing(uow, args.org)
        if org_id is None:
            raise NotFound("there is no organization yet: create one with `switchboard org create`")
        actor = Actor.system(org_id, "cli")
        result = change(uow, actor, channel_by_key(uow, actor, args.key).id, *extra, **kw)
        uow.commit()
    return result


def cmd_channel_update(args: argparse.Namespace) -> None:
    from switchboard.cli.main import _parse_credentials
    from switchboard.services import channel_lifecycle as lifecycle

    if not (args.credential or args.name or args.rate_limit):
        raise InvalidInput("nothing to change: give --credential KEY=VALUE, --name or --rate-limit")
    credentials = _parse_credentials(args.credential or [])

    def change(uow: Any, actor: Any, channel_id: int) -> Any:  # all or nothing, in one transaction
        if credentials:
            lifecycle.update_credentials(uow, actor, channel_id, get_settings().secret_key_bytes(), credentials)
        if args.name:
            lifecycle.rename_channel(uow, actor, channel_id, args.name)
        if args.rate_limit:
            lifecycle.set_rate_limit(uow, actor, channel_id, args.rate_limit)
        return lifecycle.channel_by_id(uow, actor, channel_id)

    ch = _on_channel(args, change)
    print(f"channel {ch.key} updated: {ch.name!r}, {ch.rate_limit_per_second:g}/s, status {ch.status}")


def cmd_channel_status(args: argparse.Namespace) -> None:
    from switchboard.services import channel_lifecycle as lifecycle

    change = {"pause": lifecycle.pause_channel, "resume": lifecycle.resume_channel,
              "remove": lifecycle.remove_channel}[args.channel_command]
    ch = _on_channel(args, change)
    print(f"channel {ch.key} is {ch.status}")


def cmd_channel_rename(args: argparse.Namespace) -> None:
    from switchboard.services.channel_lifecycle import rename_channel

    ch = _on_channel(args, rename_channel, args.name)
    print(f"channel {ch.key} is now called {ch.name!r}")


def cmd_channel_test(args: argparse.Namespace) -> None:
    from switchboard.errors import SwitchboardError
    from switchboard.services.channel_lifecycle import channel_by_id
    from switchboard.workflows.channel_checks import check_connection
    from switchboard.workflows.connector_cache import ConnectorCache

    engine = _engine()
    connectors = ConnectorCache(engine, get_settings().secret_key_bytes())
    try:
        test = _on_channel(args, lambda uow, actor, cid: (actor, channel_by_id(uow, actor, cid)))
        result = check_connection(engine, connectors, test[0], test[1].id)
    finally:
        connectors.close()
    print(f"channel {result.channel.key}: {'ok' if result.ok else 'FAILED'}: {result.result}")
    if not result.ok:
        raise SwitchboardError(f"connection test of {result.channel.key} failed (status {result.channel.status})")


def add_channel_commands(ch: Any, rate_type: Callable[[str], float]) -> None:
    """The lifecycle subcommands of `switchboard channel` (``ch`` is its subparsers object)."""
    ls = ch.add_parser("list", help="list the organization's channels with their webhook URLs and status")
    ls.add_argument("--org", help=ORG_HELP)
    ls.set_defaults(func=cmd_channel_list)

    up = ch.add_parser("update", help="change a channel's credentials (re-encrypted, audited), name or rate")
    up.add_argument("key", help="the channel's key, e.g. wa-main")
    up.add_argument("--credential", action="append", metavar="KEY=VALUE",
                    help="repeatable; replaces that credential, keeps the others (KEY= removes it)")
    up.add_argument("--name", help="a new display name")
    up.add_argument("--rate-limit", type=rate_type, help="messages per second, more than 0")
    up.add_argument("--org", help=ORG_HELP)
    up.set_defaults(func=cmd_channel_update)

    for name, text in (("test", "test the connection: one cheap identity call to the platform"),
                       ("pause", "stop processing and sending (deliveries are still stored)"),
                       ("resume", "process what arrived while paused, in order, and send again"),
                       ("remove", "remove the channel (history kept, its webhooks answered 410)")):
        sp = ch.add_parser(name, help=text)
        sp.add_argument("key", help="the channel's key")
        sp.add_argument("--org", help=ORG_HELP)
        sp.set_defaults(func=cmd_channel_test if name == "test" else cmd_channel_status)

    rn = ch.add_parser("rename", help="change a channel's display name")
    rn.add_argument("key")
    rn.add_argument("name")
    rn.add_argument("--org", help=ORG_HELP)
    rn.set_defaults(func=cmd_channel_rename)


# --- the operator's view of the installation ---------------------------------------------------


def cmd_status(args: argparse.Namespace) -> None:
    from switchboard.services.operations import installation_status
    from switchboard.uow import UnitOfWork

    with UnitOfWork(_engine()) as uow:
        st = installation_status(uow)
    print(f"{len(st.organizations)} organizations; webhook backlog {st.webhook_backlog}; "
          f"outbox {st.outbox_pending} pending, {st.dead_letters} dead letters")
    for o in st.organizations:
        channels = ", ".join(f"{n} {s}" for s, n in sorted(o.channels.items())) or "no channels"
        print(f"  {o.name} (id {o.id}, {o.timezone}): {o.users} users; {channels}; backlog {o.webhook_backlog}; "
              f"outbox {o.outbox_pending} pending, {o.dead_letters} dead letters")
    print("flows (last run):")
    if not st.last_runs:
        print("  none has run yet: start `switchboard worker`")
    for r in st.last_runs:
        print(f"  {r.name:<28} {r.status:<8} {r.started_at:%Y-%m-%d %H:%M:%S}" + (f"  {r.error}" if r.error else ""))
    if st.failed_runs:
        print("recent failures:")
        for r in st.failed_runs:
            print(f"  {r.started_at:%Y-%m-%d %H:%M:%S} {r.name}: {r.error}")


def add_status_command(sub: Any) -> None:
    sub.add_parser("status", help="operators: the whole installation (organizations, channels, queues, flows)"
                   ).set_defaults(func=cmd_status)
