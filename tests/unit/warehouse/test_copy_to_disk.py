"""The side file is an exact copy of the published one, chunked or not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from warehouse import publish


@pytest.mark.parametrize("chunk", [1 << 20, 3 << 20, 64 << 20])
def test_copy_is_exact_in_any_chunking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    source, target = tmp_path / "published.duckdb", tmp_path / ".published.duckdb.building-1"
    data = os.urandom((5 << 20) + 12345)
    source.write_bytes(data)
    target.write_bytes(b"stale, longer than nothing")
    monkeypatch.setattr(publish, "COPY_CHUNK_BYTES", chunk)
    publish.copy_to_disk(source, target)
    assert target.read_bytes() == data


def test_plain_copy_where_copy_file_range_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    source.write_bytes(b"x" * 1000)
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    publish.copy_to_disk(source, target)
    assert target.read_bytes() == b"x" * 1000
