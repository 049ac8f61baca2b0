"""A send that gets no answer: unknown outcome once the request may have been written, retryable before.
The transport is httpx's own (a MockTransport raising what the network raises), not a patch of our code."""

from __future__ import annotations

import httpx
import pytest

from connectors.base import RetryableError, UnknownOutcomeError
from connectors.http_errors import transport_error
from connectors.twilio import TwilioConnector
from switchboard.types import OutboundRequest


@pytest.mark.parametrize(("exc", "kind"), [
    (httpx.ReadTimeout("read timed out"), UnknownOutcomeError),
    (httpx.RemoteProtocolError("server disconnected"), UnknownOutcomeError),
    (httpx.ConnectError("connection refused"), RetryableError),
    (httpx.ConnectTimeout("connect timed out"), RetryableError),
    (httpx.PoolTimeout("no connection free"), RetryableError),
])
def test_a_send_without_an_answer(exc: httpx.TransportError, kind: type[Exception]) -> None:
    assert type(transport_error(exc, "the API", once=True)) is kind
    assert type(transport_error(exc, "the API", once=False)) is RetryableError  # not a send: retry


@pytest.mark.parametrize(("exc", "kind"), [(httpx.ReadTimeout("late"), UnknownOutcomeError),
                                           (httpx.ConnectError("refused"), RetryableError)])
def test_twilio_never_retries_blindly_a_send_that_may_have_gone(exc: httpx.TransportError,
                                                                kind: type[Exception]) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    with httpx.Client(transport=httpx.MockTransport(fail)) as http:
        sms = TwilioConnector(account_sid="AC1", auth_token="t", from_number="+14155550100", http=http)
        with pytest.raises(kind):
            sms.send(OutboundRequest(recipient_id="+14155552671", body="hello"))
