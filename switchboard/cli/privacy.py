"""`switchboard contact erase ID [--org NAME]`: a privacy request (see :mod:`switchboard.services.erasure`).

Acts as the organization's system actor (an operator's act, audited with no acting user). Irreversible,
so it asks for the contact id again unless ``--yes`` is given (a script must give it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from switchboard.cli.operations import ORG_HELP, organization_for_listing
from switchboard.errors import InvalidInput, NotFound


def cmd_contact_erase(args: argparse.Namespace) -> None:
    from switchboard.cli.main import _engine
    from switchboard.services.erasure import erase_contact, remove_files
    from switchboard.types import Actor
    from switchboard.uow import UnitOfWork

    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidInput("erasing a contact cannot be undone: add --yes to confirm")
        if input(f"Erase contact {args.contact_id} for good? Type its id again: ").strip() != str(args.contact_id):
            raise InvalidInput("not confirmed: nothing was erased")
    with UnitOfWork(_engine()) as uow:
        org_id = organization_for_listing(uow, args.org)
        if org_id is None:
            raise NotFound("there is no organization yet")
        report = erase_contact(uow, Actor.system(org_id, "cli"), args.contact_id)
        uow.commit()
    if report.already_erased:
        print(f"contact {report.contact_id} was already erased ({report.pseudonym})")
        return
    files = remove_files(report.files)
    print(f"contact {report.contact_id} erased, now shown as {report.pseudonym!r}: {report.messages} message(s) in "
          f"{report.conversations} conversation(s) emptied, {report.attachments} attachment(s) and {files} media "
          f"file(s) deleted, {report.deliveries} stored webhook deliveries deleted")


def add_contact_commands(sub: Any) -> None:
    contact = sub.add_parser("contact", help="contacts (customers)").add_subparsers(dest="contact_command",
                                                                                      required=True)
    er = contact.add_parser("erase", help="erase a contact's personal data (privacy request; irreversible)")
    er.add_argument("contact_id", type=int, help="the contact's id (shown on the inbox's customer profile)")
    er.add_argument("--org", help=ORG_HELP)
    er.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    er.set_defaults(func=cmd_contact_erase)
