"""Outgoing mail (invites, lockout notices) over SMTP when ``SMTP_HOST`` is set."""

from __future__ import annotations

import logging
import smtplib
import threading
from email.message import EmailMessage

from switchboard.errors import SwitchboardError
from switchboard.settings import Settings

log = logging.getLogger(__name__)


class MailError(SwitchboardError):
    """The SMTP server could not be reached or refused the message."""


def _message(settings: Settings, to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    return msg


def invite_message(settings: Settings, to: str, name: str, link: str, inviter: str | None,
                   valid_hours: int) -> EmailMessage:
    msg = _message(settings, to, "You are invited to Switchboard")
    who = f"{inviter} invited you" if inviter else "You were invited"
    msg.set_content(
        f"Hello {name},\n\n{who} to the Switchboard inbox.\n\n"
        f"Open this link to choose a password and set up two-factor authentication:\n\n  {link}\n\n"
        f"The link works once and expires in {valid_hours} hours.\n"
    )
    return msg


def lockout_message(settings: Settings, *, to: str, name: str, minutes: int) -> EmailMessage:
    msg = _message(settings, to, "Sign-in to Switchboard locked after failed attempts")
    msg.set_content(
        f"Hello {name},\n\nSomeone failed to sign in to Switchboard with your address several times in a "
        f"row, so sign-in with it is locked for {minutes} minutes.\n\n"
        "If that was you, wait and try again, or ask an admin of your workspace to unlock it. If it was "
        "not you, your password is still safe as long as nobody knows it; tell an admin.\n"
    )
    return msg


def send_in_background(settings: Settings, message: EmailMessage) -> threading.Thread:
    """Deliver without delaying the caller (a sign-in answer must not take longer for real accounts);
    a failure is logged."""
    def deliver() -> None:
        try:
            send_mail(settings, message)
        except MailError as exc:
            log.warning("lockout notice to %s not sent: %s", message["To"], exc)

    thread = threading.Thread(target=deliver, name="switchboard-mail", daemon=True)
    thread.start()
    return thread


def send_mail(settings: Settings, message: EmailMessage, timeout: float = 10.0) -> None:
    """Deliver one message to ``SMTP_HOST:SMTP_PORT``; MailError says why not."""
    if not settings.smtp_host:
        raise MailError("SMTP_HOST is not set")
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"could not send mail via {settings.smtp_host}:{settings.smtp_port}: {exc}") from exc


def send_invite_email(settings: Settings, *, to: str, name: str, link: str, inviter: str | None = None,
                      valid_hours: int = 72) -> None:
    send_mail(settings, invite_message(settings, to, name, link, inviter, valid_hours))
