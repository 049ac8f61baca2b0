"""Outgoing mail (invites) over SMTP when ``SMTP_HOST`` is set."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from switchboard.errors import SwitchboardError
from switchboard.settings import Settings


class MailError(SwitchboardError):
    """The SMTP server could not be reached or refused the message."""


def invite_message(settings: Settings, to: str, name: str, link: str, inviter: str | None,
                   valid_hours: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = "You are invited to Switchboard"
    who = f"{inviter} invited you" if inviter else "You were invited"
    msg.set_content(
        f"Hello {name},\n\n{who} to the Switchboard inbox.\n\n"
        f"Open this link to choose a password and set up two-factor authentication:\n\n  {link}\n\n"
        f"The link works once and expires in {valid_hours} hours.\n"
    )
    return msg


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
