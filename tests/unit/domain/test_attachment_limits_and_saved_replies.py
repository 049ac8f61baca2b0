"""The per-platform attachment limits and the saved replies' placeholders (pure rules)."""

from __future__ import annotations

import pytest

from switchboard.domain.attachments import (
    MB,
    accepted_extensions,
    check_upload,
    describe_limits,
    max_upload_bytes,
    mime_of,
)
from switchboard.domain.saved_replies import clean_saved_reply, fill, placeholders_in
from switchboard.errors import InvalidInput


@pytest.mark.parametrize(("provider", "name", "mime", "size", "kind"), [
    ("whatsapp", "a.jpg", "image/jpeg", 5 * MB, "image"),
    ("whatsapp", "a.pdf", "application/pdf", 100 * MB, "document"),
    ("sandbox", "a.docx", None, 10, "document"),
    ("messenger", "a.gif", "image/gif", 25 * MB, "image"),
    ("messenger", "a.zip", "application/zip", 25 * MB, "document"),
    ("instagram", "a.png", "image/png", 8 * MB, "image"),
    ("telegram", "a.png", "image/png", 10 * MB, "image"),
    ("telegram", "a.bin", "application/octet-stream", 2000 * MB, "document"),
])
def test_files_within_the_limits_are_accepted(provider: str, name: str, mime: str | None, size: int,
                                              kind: str) -> None:
    assert check_upload(provider, file_name=name, mime_type=mime, size_bytes=size)[0] == kind


@pytest.mark.parametrize(("provider", "name", "mime", "size", "reason"), [
    ("whatsapp", "a.png", "image/png", 5 * MB + 1, "WhatsApp sends images (JPEG or PNG) up to 5.0 MB"),
    ("whatsapp", "a.gif", "image/gif", 10, "WhatsApp cannot send a.gif (image/gif)"),
    ("whatsapp", "a.zip", "application/zip", 10, "documents: PDF, text, Word, Excel or PowerPoint"),
    ("messenger", "a.mov", "video/quicktime", 26 * MB, "Messenger sends documents (any file) up to 25.0 MB"),
    ("instagram", "a.png", "image/png", 9 * MB, "Instagram sends images (JPEG, PNG or GIF) up to 8.0 MB"),
    ("instagram", "a.docx", None, 10, "Instagram cannot send a.docx"),
    ("telegram", "a.png", "image/png", 11 * MB, "Telegram sends images (JPEG or PNG) up to 10.0 MB"),
    ("whatsapp", "empty.pdf", "application/pdf", 0, "empty.pdf is empty"),
    ("fax", "a.pdf", "application/pdf", 10, "fax channels cannot send files"),
])
def test_files_outside_the_limits_are_refused_with_the_platforms_rule(provider: str, name: str, mime: str | None,
                                                                      size: int, reason: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_upload(provider, file_name=name, mime_type=mime, size_bytes=size)
    assert reason in str(exc.value)


def test_the_picker_gets_the_platforms_types_and_limits() -> None:
    assert accepted_extensions("whatsapp") == ["doc", "docx", "jpeg", "jpg", "pdf", "png", "ppt", "pptx", "txt",
                                               "xls", "xlsx"]
    assert accepted_extensions("telegram") is None  # any file (as a document)
    assert max_upload_bytes("whatsapp") == 100 * MB and max_upload_bytes("fax") == 0
    assert describe_limits("messenger").endswith("The caption is sent as a separate message.")
    assert mime_of("photo.PNG", "application/octet-stream") == "image/png"
    assert mime_of("x", "image/jpeg; q=1") == "image/jpeg"


def test_placeholders_are_checked_at_save_time_and_filled() -> None:
    assert placeholders_in("Hi {name}, {{literal}} {first_name}") == ["name", "first_name"]
    for bad, shown in (("Hi {nmae}", "{nmae}"), ("Hi {name:>10}", "{name:>10}"), ("Hi {}", "{}"),
                       ("Hi {name!r}", "{name!r}"), ("Hi {name.upper}", "{name.upper}")):
        with pytest.raises(InvalidInput, match="unknown placeholder") as exc:
            placeholders_in(bad)
        assert shown in str(exc.value)
    with pytest.raises(InvalidInput, match="braces do not match"):
        placeholders_in("Hi {name")
    assert fill("Hi {first_name} ({name}), {agent_name} here {{ok}}", contact_name="Grace Brewster Hopper",
                agent_name="Alice") == "Hi Grace (Grace Brewster Hopper), Alice here {ok}"
    assert fill("Dear {first_name}", contact_name="  ", agent_name=None) == "Dear there"
    assert clean_saved_reply("/Thanks", " Thank you ", "Thanks!").code == "thanks"
    with pytest.raises(InvalidInput, match="title is empty"):
        clean_saved_reply("ok", " ", "x")
