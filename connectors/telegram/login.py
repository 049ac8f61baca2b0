"""Telegram login as a state machine: phone -> code -> optional 2FA password -> authorized.

The state is a plain serializable value (:class:`LoginState`), so every step can run in a
separate Streamlit rerun or process: build a gateway from ``state.session``, call the step, keep
the returned state (and persist its ``session`` — right after :func:`start_login` this matters:
the code is bound to the session's auth key, and a new key makes the code expire).

Errors come out as :class:`LoginError` with a message a person can act on; ``restart`` says the
login must go back to the phone step (expired code).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from connectors.telegram.gateway import (
    CodeExpired,
    FloodWait,
    InvalidCode,
    InvalidPassword,
    InvalidPhone,
    LoginFailed,
    TelegramGateway,
)
from switchboard.errors import AuthError

Step = Literal["phone", "code", "password", "authorized"]
GatewayFactory = Callable[[str], TelegramGateway]  # session string -> gateway

_PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()\-]{5,20}$")


class LoginError(AuthError):
    def __init__(self, message: str, *, restart: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.restart = restart
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class LoginState:
    step: Step = "phone"
    phone: str | None = None
    phone_code_hash: str | None = None
    session: str = ""
    password_hint: str | None = None
    user_id: int | None = None
    user_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> LoginState:
        fields: dict[str, Any] = {k: data[k] for k in LoginState.__dataclass_fields__ if k in data}
        state = LoginState(**fields)
        if state.step not in ("phone", "code", "password", "authorized"):
            raise ValueError(f"unknown login step {state.step!r}")
        return state


def normalize_phone(phone: str) -> str:
    phone = phone.strip()
    if not _PHONE_RE.match(phone):
        raise LoginError(f"{phone!r} is not a phone number; write it in international form, e.g. +4915112345678")
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not 7 <= len(digits) <= 15:
        raise LoginError("a phone number has 7 to 15 digits in international form, e.g. +4915112345678")
    return f"+{digits}"


def _flood(exc: FloodWait) -> LoginError:
    return LoginError(f"Telegram asks to wait {exc.seconds} seconds before trying again (too many attempts).",
                      retry_after=float(exc.seconds))


def start_login(gateway: TelegramGateway, phone: str, state: LoginState | None = None) -> LoginState:
    """Ask Telegram to send a login code to ``phone``; the returned state carries the session."""
    number = normalize_phone(phone)
    try:
        step = gateway.send_code(number)
    except FloodWait as exc:
        raise _flood(exc) from exc
    except InvalidPhone as exc:
        raise LoginError(f"Telegram does not accept {number}: is it the account's number, with country code?"
                         ) from exc
    except LoginFailed as exc:
        raise LoginError(f"Telegram refused to send a code: {exc}") from exc
    return LoginState(step="code", phone=number, phone_code_hash=step.phone_code_hash,
                      session=gateway.session_string())


def submit_code(gateway: TelegramGateway, state: LoginState, code: str) -> LoginState:
    """Check the code; the next state is ``password`` (2FA on) or ``authorized``."""
    if state.step != "code" or not state.phone or state.phone_code_hash is None:
        raise LoginError("no login code was requested yet; enter the phone number first", restart=True)
    code = code.strip().replace(" ", "").replace("-", "")
    if not code.isdigit():
        raise LoginError("the login code is the digits Telegram sent you, e.g. 12345")
    try:
        step = gateway.sign_in_code(state.phone, code, state.phone_code_hash)
    except FloodWait as exc:
        raise _flood(exc) from exc
    except InvalidCode as exc:
        raise LoginError("wrong code: check the code Telegram sent and try again") from exc
    except CodeExpired as exc:
        raise LoginError("the code has expired (or the login was restarted elsewhere): request a new code",
                         restart=True) from exc
    except LoginFailed as exc:
        raise LoginError(f"Telegram refused the code: {exc}") from exc
    session = gateway.session_string()
    if step.step == "password":
        return replace(state, step="password", session=session, password_hint=step.password_hint)
    user = step.user
    return replace(state, step="authorized", session=session, phone_code_hash=None,
                   user_id=user.id if user else None, user_name=user.display_name if user else None)


def submit_password(gateway: TelegramGateway, state: LoginState, password: str) -> LoginState:
    """Check the two-step verification password."""
    if state.step != "password":
        raise LoginError("no password is needed at this step", restart=state.step == "phone")
    if not password:
        raise LoginError("enter the account's two-step verification password")
    try:
        step = gateway.sign_in_password(password)
    except FloodWait as exc:
        raise _flood(exc) from exc
    except InvalidPassword as exc:
        hint = f" (hint: {state.password_hint})" if state.password_hint else ""
        raise LoginError(f"wrong two-step verification password{hint}") from exc
    except LoginFailed as exc:
        raise LoginError(f"Telegram refused the password: {exc}; start again", restart=True) from exc
    user = step.user
    return replace(state, step="authorized", session=gateway.session_string(), phone_code_hash=None,
                   user_id=user.id if user else None, user_name=user.display_name if user else None)
