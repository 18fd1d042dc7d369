"""Corpus-wide curation at export: records that repeat one kept earlier in the run (the
server's dedup sees one call only), and records near an item of the user's evaluation set (a
contamination guard). Both with the server's own dedup (synthqa.contract.dedup), so that a
threshold means the same here as in GenerationOptions.dedup_threshold.

Memory: every kept record's normalised text and MinHash stay in memory until the export ends
(docs/clients.md#export gives the measured cost per record)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ExportError

DEFAULT_THRESHOLD = 0.85
# Where a question is found in a line of an evaluation set, in this order.
EVAL_TEXT_KEYS = ("question", "instruction", "prompt", "query", "text")


def compared_text(line: dict[str, Any]) -> str:
    """What two records are compared by: the question, as the server compares them; a summary
    by its text; a custom record by its JSON."""
    for key in ("question", "summary"):
        if isinstance(text := line.get(key), str):
            return text
    return json.dumps(line["record"], ensure_ascii=False, sort_keys=True)


class CorpusFilter:
    def __init__(self, dedup: bool, threshold: float, eval_texts: Iterable[str] = ()) -> None:
        try:
            from synthqa.contract.dedup import Deduplicator
        except ImportError:
            raise ExportError("--dedup and --exclude-near need datasketch: pip install "
                              "'synthqa-client[dataset]'") from None
        if not 0 < threshold <= 1:
            raise ExportError(f"--dedup-threshold {threshold}: give a similarity in (0, 1]")
        self._kept = Deduplicator(threshold) if dedup else None
        self._evaluation = None
        self.eval_items = 0
        for text in eval_texts:
            if self._evaluation is None:
                self._evaluation = Deduplicator(threshold)
            self._evaluation.keep(text)
            self.eval_items += 1
        self.duplicates = 0
        self.near_eval = 0

    def admit(self, line: dict[str, Any]) -> bool:
        text = compared_text(line)
        if self._evaluation is not None and self._evaluation.duplicate_of_kept(text):
            self.near_eval += 1
            return False
        if self._kept is not None and not self._kept.keep(text):
            self.duplicates += 1
            return False
        return True


def read_eval_texts(path: Path) -> list[str]:
    """The questions of an evaluation set: JSON lines with one of EVAL_TEXT_KEYS, or chat
    `messages` / `conversations` (the first user turn)."""
    texts = []
    try:
        with path.open(encoding="utf-8") as source:
            for number, raw in enumerate(source, start=1):
                if raw.strip():
                    texts.append(_eval_text(raw, f"{path}:{number}"))
    except (OSError, UnicodeDecodeError) as error:
        raise ExportError(f"--exclude-near {path}: {error}") from None
    if not texts:
        raise ExportError(f"--exclude-near {path}: the file holds no item")
    return texts


def _eval_text(raw: str, where: str) -> str:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ExportError(f"--exclude-near {where} is not JSON ({error.msg})") from None
    if isinstance(item, dict):
        for key in EVAL_TEXT_KEYS:
            if isinstance(text := item.get(key), str):
                return text
        for turn in item.get("messages") or item.get("conversations") or []:
            if isinstance(turn, dict) and (turn.get("role") or turn.get("from")) in (
                    "user", "human"):
                content = turn.get("content", turn.get("value"))
                if isinstance(content, str):
                    return content
    raise ExportError(f"--exclude-near {where}: no question found (looked for "
                      f"{', '.join(EVAL_TEXT_KEYS)}, or a user turn in messages)")
