"""What an agent may attach on each platform: kinds, file types and sizes (pure, the one place).

The figures are the platforms' published limits:

* WhatsApp Cloud API (Meta, "Supported media types"): images JPEG/PNG up to 5 MB; documents (PDF, text,
  Word, Excel, PowerPoint) up to 100 MB; a caption on both. The sandbox behaves like WhatsApp.
* Messenger (Send API attachments): every type up to 25 MB; images JPEG/PNG/GIF; files of any type.
  Text and an attachment are separate messages (a caption goes as a second message).
* Instagram (Messaging API): images JPEG/PNG/GIF up to 8 MB; PDF files up to 25 MB; no captions either.
* Telegram (user account, MTProto): photos up to 10 MB, documents up to 2 GB; a caption on both.

:func:`check_upload` is called before anything is stored or sent; its refusal is the sentence the
agent sees. :func:`accepted_extensions` feeds the file picker, so a wrong type is refused in the browser.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass

from switchboard.errors import InvalidInput

MB = 1024 * 1024

IMAGE_JPEG_PNG = frozenset({"image/jpeg", "image/png"})
IMAGE_JPEG_PNG_GIF = IMAGE_JPEG_PNG | {"image/gif"}
OFFICE_DOCUMENTS = frozenset({
    "application/pdf", "text/plain",
    "application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
})
_EXTENSIONS = {"image/jpeg": ("jpg", "jpeg"), "image/png": ("png",), "image/gif": ("gif",),
               "application/pdf": ("pdf",), "text/plain": ("txt",), "application/msword": ("doc",),
               "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ("docx",),
               "application/vnd.ms-excel": ("xls",),
               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("xlsx",),
               "application/vnd.ms-powerpoint": ("ppt",),
               "application/vnd.openxmlformats-officedocument.presentationml.presentation": ("pptx",)}


@dataclass(frozen=True, slots=True)
class MediaLimit:
    kind: str  # image | document
    label: str  # how the refusal names the allowed types
    mime_types: frozenset[str] | None  # None: any type
    max_bytes: int


@dataclass(frozen=True, slots=True)
class PlatformMedia:
    platform: str
    limits: tuple[MediaLimit, ...]  # first match wins: images before documents
    captions: bool  # False: the text goes as a separate message

    def for_mime(self, mime: str) -> MediaLimit | None:
        return next((m for m in self.limits if m.mime_types is None or mime in m.mime_types), None)


_WHATSAPP = PlatformMedia("WhatsApp", (
    MediaLimit("image", "JPEG or PNG", IMAGE_JPEG_PNG, 5 * MB),
    MediaLimit("document", "PDF, text, Word, Excel or PowerPoint", OFFICE_DOCUMENTS, 100 * MB),
), captions=True)
MEDIA_LIMITS: Mapping[str, PlatformMedia] = {
    "whatsapp": _WHATSAPP,
    "sandbox": _WHATSAPP,
    "messenger": PlatformMedia("Messenger", (
        MediaLimit("image", "JPEG, PNG or GIF", IMAGE_JPEG_PNG_GIF, 25 * MB),
        MediaLimit("document", "any file", None, 25 * MB),
    ), captions=False),
    "instagram": PlatformMedia("Instagram", (
        MediaLimit("image", "JPEG, PNG or GIF", IMAGE_JPEG_PNG_GIF, 8 * MB),
        MediaLimit("document", "PDF", frozenset({"application/pdf"}), 25 * MB),
    ), captions=False),
    "telegram": PlatformMedia("Telegram", (
        MediaLimit("image", "JPEG or PNG", IMAGE_JPEG_PNG, 10 * MB),
        MediaLimit("document", "any file", None, 2048 * MB),
    ), captions=True),
}


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB // 10 else f"{n} bytes"


def platform_media(provider: str) -> PlatformMedia:
    found = MEDIA_LIMITS.get(provider)
    if found is None:
        raise InvalidInput(f"{provider} channels cannot send files")
    return found


def mime_of(file_name: str, declared: str | None) -> str:
    """The file's type: what the browser declared, else guessed from the name."""
    mime = (declared or "").split(";", 1)[0].strip().lower()
    if not mime or mime == "application/octet-stream":
        mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    return mime


def check_upload(provider: str, *, file_name: str, mime_type: str | None, size_bytes: int) -> tuple[str, str]:
    """(kind, mime type) of a file the platform accepts; InvalidInput with the platform's limit otherwise."""
    media = platform_media(provider)
    if not file_name or not file_name.strip():
        raise InvalidInput("the file has no name")
    if size_bytes <= 0:
        raise InvalidInput(f"{file_name} is empty")
    mime = mime_of(file_name, mime_type)
    limit = media.for_mime(mime)
    if limit is None:
        allowed = "; ".join(f"{m.kind}s: {m.label}" for m in media.limits)
        raise InvalidInput(f"{media.platform} cannot send {file_name} ({mime}); it accepts {allowed}")
    if size_bytes > limit.max_bytes:
        raise InvalidInput(f"{file_name} is {_size(size_bytes)}; {media.platform} sends {limit.kind}s "
                           f"({limit.label}) up to {_size(limit.max_bytes)}")
    return limit.kind, mime


def accepted_extensions(provider: str) -> list[str] | None:
    """File name extensions for the file picker (None: any file is accepted by one of the kinds)."""
    media = MEDIA_LIMITS.get(provider)
    if media is None:
        return []
    if any(m.mime_types is None for m in media.limits):
        return None
    return sorted({ext for m in media.limits for mime in (m.mime_types or ()) for ext in _EXTENSIONS.get(mime, ())})


def max_upload_bytes(provider: str) -> int:
    media = MEDIA_LIMITS.get(provider)
    return max((m.max_bytes for m in media.limits), default=0) if media else 0


def describe_limits(provider: str) -> str:
    """One line for the file picker: "WhatsApp: images (JPEG or PNG) up to 5.0 MB; documents … up to …"."""
    media = MEDIA_LIMITS.get(provider)
    if media is None:
        return f"{provider} channels cannot send files"
    kinds = "; ".join(f"{m.kind}s ({m.label}) up to {_size(m.max_bytes)}" for m in media.limits)
    caption = "" if media.captions else " The caption is sent as a separate message."
    return f"{media.platform}: {kinds}.{caption}"
