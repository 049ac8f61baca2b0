"""Media download edge cases against a tiny fake media host over real HTTP."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import AuthenticationError, PermanentError
from connectors.whatsapp import WhatsAppConnector
from tests.fakes.server import run_asgi

PDF = b"%PDF-1.4 fake document body" * 100


def _app(state: dict[str, str]) -> Starlette:
    async def info(request: Request) -> Response:
        mid = request.path_params["media_id"]
        digest = hashlib.sha256(PDF).digest()
        sha = {"good": digest.hex(), "b64": base64.b64encode(digest).decode(), "bad": "0" * 64,
               "huge": digest.hex(), "octet": digest.hex()}[mid]
        size = 10**9 if mid == "huge" else len(PDF)
        return JSONResponse({"url": f"{state['base']}/files/{mid}", "mime_type": "application/pdf",
                             "sha256": sha, "file_size": size, "id": mid, "messaging_product": "whatsapp"})

    async def files(request: Request) -> Response:
        if request.headers.get("authorization") != "Bearer tok":
            return JSONResponse({"error": {"message": "bad token", "code": 190}}, status_code=401)
        mime = "application/octet-stream" if request.path_params["media_id"] == "octet" else "application/pdf"
        return Response(PDF, media_type=mime)

    return Starlette(routes=[Route("/v21.0/{media_id}", info), Route("/files/{media_id}", files)])


@pytest.fixture
def connector() -> Iterator[WhatsAppConnector]:
    state: dict[str, str] = {}
    with run_asgi(_app(state)) as base:
        state["base"] = base
        with WhatsAppConnector(phone_number_id="1", access_token="tok", app_secret="s", api_base_url=base) as c:
            yield c


@pytest.mark.parametrize("media_id", ["good", "b64", "octet"])
def test_download_verifies_checksum_in_hex_or_base64(connector: WhatsAppConnector, tmp_path: Path,
                                                    media_id: str) -> None:
    stored = connector.download_media(media_id, tmp_path)
    assert stored.sha256 == hashlib.sha256(PDF).hexdigest() and stored.size_bytes == len(PDF)
    assert stored.path.suffix == ".pdf" and stored.mime_type == "application/pdf"


def test_checksum_mismatch_and_declared_size_are_refused(connector: WhatsAppConnector, tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as bad:
        connector.download_media("bad", tmp_path)
    assert bad.value.code == "media_checksum_mismatch"
    with pytest.raises(PermanentError) as huge:
        connector.download_media("huge", tmp_path)
    assert huge.value.code == "media_too_large"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_download_needs_a_valid_token(tmp_path: Path) -> None:
    state: dict[str, str] = {}
    with run_asgi(_app(state)) as base:
        state["base"] = base
        with WhatsAppConnector(phone_number_id="1", access_token="wrong", app_secret="s",
                               api_base_url=base) as c, pytest.raises(AuthenticationError):
            c.download_media("good", tmp_path)
