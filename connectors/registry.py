"""The provider table: for each provider, how to build its connector and which capabilities it has.

Callers never sniff a connector with isinstance/getattr: they ask :func:`supports` (by provider) or
take a typed port with :func:`port` (``port(connector, SEND).send(...)``), which refuses with
:class:`~connectors.base.Unsupported` when the provider lacks the capability.

To add a platform: write its connector (implementing the protocols of :mod:`connectors.base` it
supports), add one factory and one row to :data:`PROVIDERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from connectors.base import (
    HISTORY,
    IDENTITY,
    MEDIA,
    READ_RECEIPTS,
    SEND,
    TEMPLATES,
    TOKEN_EXPIRY,
    WEBHOOKS,
    Capability,
    Connector,
    ConnectorError,
    Unsupported,
)
from connectors.graph import DEFAULT_GRAPH_BASE_URL, DEFAULT_GRAPH_VERSION, DEFAULT_TIMEOUT
from connectors.signatures import BodyFormat, body_error

if TYPE_CHECKING:
    from connectors.email import ThreadLookup
    from connectors.telegram import GatewayFactory, PeerLookup

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8787"
META_PROVIDERS = ("messenger", "instagram")
P = TypeVar("P", bound=Connector)


@dataclass(frozen=True)
class ChannelConfig:
    """What a factory gets: the channel's provider, external id and decrypted credentials, plus
    optional shared resources (an httpx client the caller owns; Telegram's stored peers and a
    gateway factory; the channel's public webhook URL, Twilio's status callback; the email
    threads lookup)."""

    provider: str
    external_id: str | None
    credentials: Mapping[str, Any]
    http: httpx.Client | None = None
    peers: PeerLookup | None = None
    telegram_gateway: GatewayFactory | None = None
    webhook_url: str | None = None
    email_threads: ThreadLookup | None = None


@dataclass(frozen=True)
class ProviderSpec:
    factory: Callable[[ChannelConfig], Connector]
    capabilities: frozenset[Capability[Any]] = field(default_factory=frozenset)
    body_format: BodyFormat = "json"  # what a well-formed webhook body is (Twilio posts forms)


def _required(config: ChannelConfig, *names: str) -> str:
    for name in names:
        value = config.credentials.get(name)
        if value:
            return str(value)
    raise ConnectorError(f"{config.provider} channel credentials lack {' or '.join(names)}", code="config")


def _graph_options(config: ChannelConfig, default_base: str = DEFAULT_GRAPH_BASE_URL) -> dict[str, Any]:
    creds = config.credentials
    return {"verify_token": str(creds.get("verify_token") or ""),
            "api_base_url": str(creds.get("api_base_url") or default_base),
            "api_version": str(creds.get("api_version") or DEFAULT_GRAPH_VERSION),
            "http": config.http, "timeout": _timeout(creds)}


def _timeout(creds: Mapping[str, Any]) -> httpx.Timeout:
    """The channel's HTTP timeout (credential ``timeout_seconds``; default 20 s, connect at most 5 s):
    a send that gets no answer within it has an unknown outcome."""
    try:
        seconds = float(creds.get("timeout_seconds") or DEFAULT_TIMEOUT.read or 20.0)
    except (TypeError, ValueError):
        raise ConnectorError("credential timeout_seconds must be a number of seconds", code="config") from None
    if not seconds > 0:
        raise ConnectorError("credential timeout_seconds must be more than 0", code="config")
    return httpx.Timeout(seconds, connect=min(5.0, seconds))


def _whatsapp(config: ChannelConfig) -> Connector:
    from connectors.whatsapp import WhatsAppConnector, channel_phone_number_id

    sandbox = config.provider == "sandbox"
    return WhatsAppConnector(
        phone_number_id=channel_phone_number_id(config.external_id, config.credentials)
        or _required(config, "phone_number_id"),
        access_token=_required(config, "access_token"),
        app_secret=_required(config, "app_secret"),
        waba_id=str(config.credentials.get("waba_id") or "") or None,
        provider="sandbox" if sandbox else "whatsapp",
        **_graph_options(config, DEFAULT_SANDBOX_URL if sandbox else DEFAULT_GRAPH_BASE_URL),
    )


def _meta(config: ChannelConfig) -> Connector:
    from connectors.meta import MetaConnector

    provider = config.provider
    id_keys = ("ig_user_id", "page_id") if provider == "instagram" else ("page_id",)
    account_id = next((str(config.credentials[k]) for k in id_keys if config.credentials.get(k)),
                      None) or config.external_id
    if not account_id:
        raise ConnectorError(f"{provider} channel needs {' or '.join(id_keys)} (or an external id)", code="config")
    bot_ids = config.credentials.get("bot_app_ids") or ()
    return MetaConnector(
        provider=provider,  # type: ignore[arg-type]
        account_id=str(account_id),
        page_access_token=_required(config, "page_access_token", "access_token"),
        app_secret=_required(config, "app_secret"),
        bot_app_ids=tuple(str(b) for b in bot_ids),
        **_graph_options(config),
    )


def _telegram(config: ChannelConfig) -> Connector:
    from connectors.telegram import TelegramConnector  # a Telethon user account: no webhooks

    return TelegramConnector(config.credentials, peers=config.peers, gateway_factory=config.telegram_gateway)


def _twilio(config: ChannelConfig) -> Connector:
    from connectors.twilio import DEFAULT_TWILIO_API, TwilioConnector

    creds = config.credentials
    return TwilioConnector(
        account_sid=_required(config, "account_sid"),
        auth_token=_required(config, "auth_token"),
        from_number=str(creds.get("from_number") or config.external_id or "") or None,
        messaging_service_sid=str(creds.get("messaging_service_sid") or "") or None,
        api_key_sid=str(creds.get("api_key_sid") or "") or None,
        api_key_secret=str(creds.get("api_key_secret") or "") or None,
        status_callback_url=str(creds.get("status_callback_url") or config.webhook_url or "") or None,
        default_region=str(creds.get("default_region") or "") or None,
        api_base_url=str(creds.get("api_base_url") or DEFAULT_TWILIO_API),
        http=config.http,
    )


def _email(config: ChannelConfig) -> Connector:
    from connectors.email import DEFAULT_POSTMARK_API, EmailConnector

    creds = config.credentials

    def text(name: str) -> str | None:
        return str(creds.get(name) or "") or None

    try:
        port_number = int(creds.get("smtp_port") or 587)
    except (TypeError, ValueError):
        raise ConnectorError("credential smtp_port must be a port number", code="config") from None
    return EmailConnector(
        from_address=str(creds.get("from_address") or config.external_id or "") or _required(config, "from_address"),
        from_name=text("from_name"), smtp_host=text("smtp_host"), smtp_port=port_number,
        smtp_username=text("smtp_username"), smtp_password=text("smtp_password"),
        smtp_security=text("smtp_security") or "starttls", postmark_server_token=text("postmark_server_token"),
        postmark_api_url=text("postmark_api_url") or DEFAULT_POSTMARK_API,
        postmark_message_stream=text("postmark_message_stream") or "outbound",
        inbound_username=text("inbound_username"), inbound_password=text("inbound_password"),
        inbound_token=text("inbound_token"), default_subject=text("default_subject"),
        threads=config.email_threads, http=config.http,
    )


_WHATSAPP = frozenset({WEBHOOKS, SEND, MEDIA, READ_RECEIPTS, TEMPLATES, IDENTITY, TOKEN_EXPIRY})
# Meta media come as URLs: nothing to fetch
_META = frozenset({WEBHOOKS, SEND, HISTORY, READ_RECEIPTS, IDENTITY, TOKEN_EXPIRY})

PROVIDERS: dict[str, ProviderSpec] = {
    "whatsapp": ProviderSpec(_whatsapp, _WHATSAPP),
    "sandbox": ProviderSpec(_whatsapp, _WHATSAPP),
    "messenger": ProviderSpec(_meta, _META),
    "instagram": ProviderSpec(_meta, _META),
    "telegram": ProviderSpec(_telegram, frozenset({SEND, MEDIA, IDENTITY, READ_RECEIPTS})),
    "twilio": ProviderSpec(_twilio, frozenset({WEBHOOKS, SEND, MEDIA}), body_format="form"),
    "email": ProviderSpec(_email, frozenset({WEBHOOKS, SEND, MEDIA})),  # media: attachments inside the webhook
}


def webhook_body_error(provider: str, raw_body: bytes) -> str | None:
    """Why a webhook body is malformed for ``provider`` (JSON, or a form for Twilio); None when fine."""
    spec = PROVIDERS.get(provider)
    return body_error(spec.body_format if spec is not None else "json", raw_body)


def supports(provider: str, capability: Capability[Any]) -> bool:
    """Whether connectors of ``provider`` have ``capability`` (False for unknown providers)."""
    spec = PROVIDERS.get(provider)
    return spec is not None and capability in spec.capabilities


def port(connector: Connector, capability: Capability[P]) -> P:
    """The connector seen through one capability's port; :class:`Unsupported` if it has not got it."""
    if not supports(connector.provider, capability):
        raise Unsupported(f"{connector.provider} channels have no {capability.name}", code="unsupported")
    return cast(P, connector)


def get_connector(provider: str, *, external_id: str | None, credentials: Mapping[str, Any],
                  http: httpx.Client | None = None, peers: PeerLookup | None = None,
                  telegram_gateway: GatewayFactory | None = None, webhook_url: str | None = None,
                  email_threads: ThreadLookup | None = None) -> Connector:
    """The connector for one channel.

    ``http``: an optional shared client (the caller then owns and closes it); otherwise the
    connector owns its own client and closes it in ``close()`` / on ``with`` exit.
    """
    spec = PROVIDERS.get(provider)
    if spec is None:
        raise ConnectorError(f"unknown provider {provider!r}; expected {', '.join(PROVIDERS)}",
                             code="unsupported_provider")
    return spec.factory(ChannelConfig(provider, external_id, credentials, http, peers, telegram_gateway,
                                      webhook_url, email_threads))
