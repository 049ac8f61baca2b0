"""The connectors' HTTP clients: one TLS context per process, shared by every client.

Loading the CA bundle into a new TLS context costs ~30 ms of CPU, holding the GIL; a client built with
``verify=True`` pays it every time. The webhook receiver rebuilds a channel's connector every 30 s (its
credentials may have changed), and the senders and syncs build one per run: with the shared context a
client costs ~2 ms.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def tls_context() -> ssl.SSLContext:
    """The certificate-verifying TLS context of this process (httpx's defaults: certifi's bundle, or
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` from the environment)."""
    return httpx.create_ssl_context()


def client(*, timeout: httpx.Timeout | float, base_url: str = "", follow_redirects: bool = False,
           headers: dict[str, str] | None = None) -> httpx.Client:
    """A sync client verifying certificates with :func:`tls_context`."""
    return httpx.Client(base_url=base_url, timeout=timeout, follow_redirects=follow_redirects, headers=headers,
                        verify=tls_context())
