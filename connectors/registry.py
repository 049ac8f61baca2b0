"""Build the connector for a channel from its provider and (decrypted) credentials."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from connectors.base import Connector, ConnectorError
from connectors.http import DEFAULT_GRAPH_BASE_URL, DEFAULT_GRAPH_VERSION

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8787"
META_PROVIDERS = ("messenger", "instagram")


def _required(credentials: Mapping[str, Any], provider: str, *names: str) -> str:
    for name in names:
        value = credentials.get(name)
        if value:
            return str(value)
    raise ConnectorError(f"{provider} channel credentials lack {' or '.join(names)}", code="config")


def get_connector(provider: str, *, external_id: str | None, credentials: Mapping[str, Any],
                  http: httpx.Client | None = None) -> Connector:
    """The connector for one channel.

    ``http``: an optional shared client (the caller then owns and closes it); otherwise the
    connector owns its own client and closes it in ``close()`` / on ``with`` exit.
    """
    if provider in ("whatsapp", "sandbox"):
        from connectors.whatsapp import WhatsAppConnector, channel_phone_number_id

        default_base = DEFAULT_SANDBOX_URL if provider == "sandbox" else DEFAULT_GRAPH_BASE_URL
        return WhatsAppConnector(
            phone_number_id=channel_phone_number_id(external_id, credentials)
            or _required(credentials, provider, "phone_number_id"),
            access_token=_required(credentials, provider, "access_token"),
            app_secret=_required(credentials, provider, "app_secret"),
            verify_token=str(credentials.get("verify_token") or ""),
            api_base_url=str(credentials.get("api_base_url") or default_base),
            api_version=str(credentials.get("api_version") or DEFAULT_GRAPH_VERSION),
            http=http,
            provider="sandbox" if provider == "sandbox" else "whatsapp",
        )
    if provider in META_PROVIDERS:
        from connectors.meta import MetaConnector

        id_keys = ("ig_user_id", "page_id") if provider == "instagram" else ("page_id",)
        account_id = next((str(credentials[k]) for k in id_keys if credentials.get(k)), None) or external_id
        if not account_id:
            raise ConnectorError(f"{provider} channel needs {' or '.join(id_keys)} (or an external id)",
                                 code="config")
        bot_ids = credentials.get("bot_app_ids") or ()
        return MetaConnector(
            provider=provider,  # type: ignore[arg-type]
            account_id=str(account_id),
            page_access_token=_required(credentials, provider, "page_access_token", "access_token"),
            app_secret=_required(credentials, provider, "app_secret"),
            verify_token=str(credentials.get("verify_token") or ""),
            api_base_url=str(credentials.get("api_base_url") or DEFAULT_GRAPH_BASE_URL),
            api_version=str(credentials.get("api_version") or DEFAULT_GRAPH_VERSION),
            bot_app_ids=tuple(str(b) for b in bot_ids),
            http=http,
        )
    if provider == "telegram":
        from connectors.telegram import TelegramConnector  # Telethon user account; sends only

        return TelegramConnector(credentials)
    raise ConnectorError(f"unknown provider {provider!r}; expected whatsapp, sandbox, messenger or instagram",
                         code="unsupported_provider")
