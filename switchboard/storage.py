"""Where media files live: content addressed (``<dir>/<sha256[:2]>/<sha256><ext>``), so storing the same
bytes twice is idempotent. Used by the media downloads (:mod:`connectors.media`) and by agents' uploads
(:mod:`switchboard.services.attachments`)."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_EXTRA_EXT = {"audio/ogg": ".ogg", "audio/opus": ".opus", "image/webp": ".webp", "audio/amr": ".amr",
              "image/jpeg": ".jpg", "audio/aac": ".aac", "audio/mpeg": ".mp3", "video/3gpp": ".3gp"}


def base_mime(value: str | None) -> str:
    """``'audio/ogg; codecs=opus'`` -> ``'audio/ogg'``."""
    return (value or "application/octet-stream").split(";", 1)[0].strip().lower()


def extension_for(mime: str) -> str:
    return _EXTRA_EXT.get(mime) or mimetypes.guess_extension(mime) or ".bin"


def content_path(dest_dir: Path, sha256_hex: str, mime: str) -> Path:
    """The file's content address under ``dest_dir`` (its parent directory is created)."""
    final_dir = dest_dir / sha256_hex[:2]
    final_dir.mkdir(parents=True, exist_ok=True)
    return final_dir / f"{sha256_hex}{extension_for(mime)}"


def store_bytes(dest_dir: Path, data: bytes, mime: str) -> tuple[Path, str]:
    """Write ``data`` at its content address (atomically: a temporary file renamed); (path, sha256)."""
    digest = hashlib.sha256(data).hexdigest()
    final = content_path(dest_dir, digest, base_mime(mime))
    if not final.exists():
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=final.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, final)
    return final, digest


def files_older_than(dest_dir: Path, before: float) -> Iterator[Path]:
    """Every file under ``dest_dir`` last modified before ``before`` (a POSIX time), unfinished
    downloads (``.part-*``) included."""
    if not dest_dir.is_dir():
        return
    for path in dest_dir.rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime < before:
                yield path
        except FileNotFoundError:  # removed meanwhile
            continue


def remove_file(path: Path) -> int:
    """Delete a media file; the bytes freed (0 if it was already gone)."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size
