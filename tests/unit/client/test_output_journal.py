"""Cutting a torn last line, whatever its length."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthqa.client.output_journal import repair_torn_tail


@pytest.mark.parametrize("torn", [b"", b"x", b'{"q": "' + b"y" * 200_000])
def test_a_torn_tail_is_cut_back_to_the_last_whole_line(tmp_path: Path, torn: bytes) -> None:
    path = tmp_path / "pairs.jsonl"
    whole = b'{"a": 1}\n' + b'{"b": "' + b"z" * 150_000 + b'"}\n'
    path.write_bytes(whole + torn)
    assert repair_torn_tail(path) == bool(torn)
    assert path.read_bytes() == whole


def test_a_file_with_no_whole_line_becomes_empty(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"x" * 100_000)
    assert repair_torn_tail(path)
    assert path.read_bytes() == b""
