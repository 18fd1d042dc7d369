"""`synthqa export`: a run's output lines (record_lines.py) as the files a trainer takes, split
by source document so that no document has records in two splits.

Formats, one JSON object a line:
- jsonl: the lines as written, lineage included;
- alpaca: {"instruction", "input", "output"};
- sharegpt: {"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]};
- openai: {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}, as fine-tuning
  APIs take it.
A cot record's reasoning goes into the answer turn, before the answer (`REASONED_ANSWER`); a
summary record answers `SUMMARY_INSTRUCTION`. Custom records have no question and answer:
only jsonl takes them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .record_lines import LINE_SCHEMA_VERSION

FORMATS = ("jsonl", "alpaca", "sharegpt", "openai")
REASONED_ANSWER = "{reasoning}\n\nAnswer: {answer}"
SUMMARY_INSTRUCTION = "Summarize the passage."
DEFAULT_SPLIT = {"train": 1.0}


class ExportError(Exception):
    """The run cannot be exported as asked; the message says why."""


def parse_split(text: str) -> dict[str, float]:
    """`train=0.9,validation=0.1` → shares that add up to 1."""
    shares: dict[str, float] = {}
    for part in text.split(","):
        name, _, share = part.partition("=")
        try:
            value = float(share)
        except ValueError:
            raise ExportError(f"--split: {part!r} is not NAME=SHARE") from None
        if not name.strip().isidentifier() or value < 0:
            raise ExportError(f"--split: {part!r} is not NAME=SHARE with a share of 0 or more")
        shares[name.strip()] = value
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise ExportError(f"--split: the shares add up to {sum(shares.values()):g}, not 1")
    return shares


def split_of(document_id: str, shares: dict[str, float], seed: int) -> str:
    """The split a document belongs to: a seeded hash of its id, so that every record of a
    document goes to one split, the same one in every run with the same seed."""
    digest = hashlib.sha256(f"{seed}\0{document_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = 0.0
    for name, share in shares.items():
        total += share
        if point < total:
            return name
    return next(reversed(shares))


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """A run's lines; refused when written in another line schema."""
    with path.open(encoding="utf-8") as source:
        for number, text in enumerate(source, start=1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError as error:
                raise ExportError(f"{path}:{number} is not JSON ({error.msg})") from None
            version = line.get("schema_version") if isinstance(line, dict) else None
            if version != LINE_SCHEMA_VERSION:
                raise ExportError(f"{path}:{number} is not a synthqa record line of schema "
                                  f"version {LINE_SCHEMA_VERSION} (schema_version: {version})")
            yield line


def _turns(line: dict[str, Any]) -> tuple[str, str]:
    """The user's turn and the assistant's for a built-in record."""
    shape = line["shape"]
    if shape == "qa":
        return line["question"], line["answer"]
    if shape == "cot":
        return line["question"], REASONED_ANSWER.format(reasoning=line["reasoning"],
                                                        answer=line["answer"])
    if shape == "summary":
        return SUMMARY_INSTRUCTION, line["summary"]
    raise ExportError(f"{line['document_id']}: a {shape} record has no question and answer; "
                      "only --format jsonl exports it")


def _alpaca(line: dict[str, Any]) -> dict[str, Any]:
    prompt, answer = _turns(line)
    return {"instruction": prompt, "input": "", "output": answer}


def _sharegpt(line: dict[str, Any]) -> dict[str, Any]:
    prompt, answer = _turns(line)
    return {"conversations": [{"from": "human", "value": prompt},
                              {"from": "gpt", "value": answer}]}


def _openai(line: dict[str, Any]) -> dict[str, Any]:
    prompt, answer = _turns(line)
    return {"messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": answer}]}


_CONVERTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "jsonl": lambda line: line, "alpaca": _alpaca, "sharegpt": _sharegpt, "openai": _openai,
}


def export(lines: Iterable[dict[str, Any]], out: Path, fmt: str,
           shares: dict[str, float] = DEFAULT_SPLIT, seed: int = 0) -> dict[str, int]:
    """Writes `out/<split>.jsonl` for every split; the records written per split. Written to
    temporary names and renamed at the end: a refused record leaves no half export."""
    if fmt not in _CONVERTERS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    convert = _CONVERTERS[fmt]
    out.mkdir(parents=True, exist_ok=True)
    temporary = {name: out / f".{name}.jsonl.partial" for name in shares}
    counts = dict.fromkeys(shares, 0)
    sinks = {name: path.open("w", encoding="utf-8") for name, path in temporary.items()}
    try:
        for line in lines:
            split = split_of(line["document_id"], shares, seed)
            sinks[split].write(json.dumps(convert(line), ensure_ascii=False) + "\n")
            counts[split] += 1
    except BaseException:
        for sink in sinks.values():
            sink.close()
        for path in temporary.values():
            path.unlink(missing_ok=True)
        raise
    for name, sink in sinks.items():
        sink.close()
        temporary[name].replace(out / f"{name}.jsonl")
    return counts
