"""The domain's exception hierarchy. Entry points turn these into clear messages, never tracebacks."""

from __future__ import annotations


class SwitchboardError(Exception):
    """Base of every error the product reports to a person."""


class NotFound(SwitchboardError):
    """The row does not exist or is not visible to the caller (other organization, no permission)."""


class PermissionDenied(SwitchboardError):
    """The caller may not do this; the message says why."""


class Conflict(SwitchboardError):
    """The state changed under the caller (e.g. someone else accepted the conversation first)."""


class InvalidInput(SwitchboardError):
    """The input is malformed; the message says what is wrong."""


class InvalidField(InvalidInput):
    """One named input field is wrong (the HTTP API reports the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class AuthError(SwitchboardError):
    """Login refused; the message says which rule refused it."""


class RateLimited(SwitchboardError):
    """Too many requests for now; ``retry_after`` seconds until the next is allowed."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
