"""Download platform media into local storage with size and type checks.

Files are content-addressed (``<dir>/<sha256[:2]>/<sha256><ext>``), so downloading the same media
twice is idempotent. The body is streamed: a download stops as soon as it passes ``max_bytes``, and
nothing is left behind on failure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import httpx

from connectors.base import PermanentError, RetryableError
from connectors.graph import classify_graph_error
from switchboard.storage import base_mime, content_path

__all__ = ["DEFAULT_ALLOWED_MIME", "DEFAULT_MAX_BYTES", "MediaSink", "StoredMedia", "base_mime", "download_to_dir"]

DEFAULT_MAX_BYTES = 100 * 1024 * 1024  # WhatsApp's largest media type (documents) is 100 MB

DEFAULT_ALLOWED_MIME: frozenset[str] = frozenset({
    "image/jpeg", "image/png", "image/webp", "image/gif",
    "video/mp4", "video/3gpp", "video/quicktime",
    "audio/aac", "audio/mp4", "audio/mpeg", "audio/amr", "audio/ogg", "audio/opus", "audio/wav",
    "application/pdf", "text/plain", "text/csv",
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/zip",
})



@dataclass(frozen=True, slots=True)
class StoredMedia:
    path: Path
    sha256: str  # lowercase hex
    size_bytes: int
    mime_type: str


def _expected_digest(value: str | None) -> bytes | None:
    """Platforms give the hash as hex or base64; return the 32 raw bytes when it parses as either."""
    if not value:
        return None
    text = value.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


class MediaSink:
    """A write-only binary file for one download: it hashes and counts what is written, refuses more
    than ``max_bytes`` (PermanentError ``media_too_large``), and :meth:`finish` moves it to its content
    address ``<dest_dir>/<sha256[:2]>/<sha256><ext>``. Leaving the ``with`` block without finishing
    (or with an exception) removes the partial file.

    Platforms that hand us a file-like target (Telethon's ``download_media(file=...)``) write into it
    directly; :func:`download_to_dir` feeds it from an HTTP stream.
    """

    def __init__(self, dest_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.dest_dir = dest_dir
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=dest_dir)
        self._tmp = Path(tmp_name)
        self._fh: BinaryIO | None = os.fdopen(fd, "wb")
        self._finished = False

    def write(self, chunk: bytes) -> int:
        if self._fh is None:
            raise ValueError("media sink is closed")
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise PermanentError(f"media is larger than the limit of {self.max_bytes} bytes", code="media_too_large")
        self._digest.update(chunk)
        return self._fh.write(chunk)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def finish(self, mime: str, *, expected_sha256: str | None = None) -> StoredMedia:
        """Close and move the file to its content address (idempotent: same bytes, same path)."""
        if self._fh is None:
            raise ValueError("media sink is closed")
        self._fh.close()
        self._fh = None
        expected = _expected_digest(expected_sha256)
        if expected is not None and expected != self._digest.digest():
            raise PermanentError("media checksum does not match the platform's sha256",
                                 code="media_checksum_mismatch")
        hexdigest = self._digest.hexdigest()
        final = content_path(self.dest_dir, hexdigest, mime)
        os.replace(self._tmp, final)
        self._finished = True
        return StoredMedia(path=final, sha256=hexdigest, size_bytes=self.size, mime_type=mime)

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if not self._finished:  # after finish() the name may already belong to another download
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> MediaSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()


def download_to_dir(
    client: httpx.Client,
    url: str,
    dest_dir: Path,
    *,
    headers: dict[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allowed_mime: Iterable[str] | None = DEFAULT_ALLOWED_MIME,
    declared_mime: str | None = None,
    expected_sha256: str | None = None,
) -> StoredMedia:
    """Stream ``url`` into ``dest_dir``; raise PermanentError on size/type/checksum violations.

    ``declared_mime`` (from the webhook or media metadata) wins over the response's content-type when
    the server only says ``application/octet-stream``.
    """
    allowed = frozenset(base_mime(m) for m in allowed_mime) if allowed_mime is not None else None
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        with client.stream("GET", url, headers=headers or {}) as response:
            if response.status_code >= 400:
                response.read()
                raise classify_graph_error(response)
            served = base_mime(response.headers.get("content-type"))
            mime = served
            if declared_mime and served in ("application/octet-stream", "binary/octet-stream"):
                mime = base_mime(declared_mime)
            if allowed is not None and mime not in allowed:
                raise PermanentError(f"media type {mime!r} is not allowed", code="media_type_not_allowed")
            length = response.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise PermanentError(f"media is {int(length)} bytes, more than the limit of {max_bytes}",
                                     code="media_too_large")
            with MediaSink(dest_dir, max_bytes=max_bytes) as sink:
                for chunk in response.iter_bytes(64 * 1024):
                    sink.write(chunk)
                return sink.finish(mime, expected_sha256=expected_sha256)
    except httpx.TimeoutException as exc:
        raise RetryableError(f"timeout downloading media: {exc!r}", code="timeout") from None
    except httpx.TransportError as exc:
        raise RetryableError(f"network error downloading media: {exc!r}", code="network") from None
