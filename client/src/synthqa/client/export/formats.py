"""What one record line becomes in each export format.

- jsonl: the line as written, lineage included;
- alpaca: {"instruction", "input", "output"};
- sharegpt: {"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]};
- openai: {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}, as fine-tuning
  APIs take it;
- chatml: {"text": ...}, the conversation rendered with a chat template;
- parquet: the line's columns plus `messages` (line_rows.py).
A cot record's reasoning goes into the answer turn, before the answer (`REASONED_ANSWER`); a
summary record answers `SUMMARY_INSTRUCTION`. Custom records have no question and answer: only
jsonl and parquet take them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .chat_template import ChatTemplate
from .errors import ExportError

Line = dict[str, Any]
Converter = Callable[[Line], dict[str, Any]]

FORMATS = ("jsonl", "alpaca", "sharegpt", "openai", "chatml", "parquet")
# Formats whose rows are the lines themselves: every shape, custom records included.
LINEAGE_FORMATS = ("jsonl", "parquet")
REASONED_ANSWER = "{reasoning}\n\nAnswer: {answer}"
SUMMARY_INSTRUCTION = "Summarize the passage."


def turns(line: Line) -> tuple[str, str] | None:
    """The user's turn and the assistant's for a built-in record; None for a custom one."""
    shape = line["shape"]
    if shape == "qa":
        return line["question"], line["answer"]
    if shape == "cot":
        return line["question"], REASONED_ANSWER.format(reasoning=line["reasoning"],
                                                        answer=line["answer"])
    if shape == "summary":
        return SUMMARY_INSTRUCTION, line["summary"]
    return None


def messages(line: Line) -> list[dict[str, str]] | None:
    pair = turns(line)
    if pair is None:
        return None
    return [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]


def _pair(line: Line, fmt: str) -> tuple[str, str]:
    pair = turns(line)
    if pair is None:
        raise ExportError(f"{line['document_id']}: a {line['shape']} record has no question "
                          f"and answer, so --format {fmt} cannot hold it; --format jsonl or "
                          "parquet exports it")
    return pair


def _alpaca(line: Line) -> dict[str, Any]:
    prompt, answer = _pair(line, "alpaca")
    return {"instruction": prompt, "input": "", "output": answer}


def _sharegpt(line: Line) -> dict[str, Any]:
    prompt, answer = _pair(line, "sharegpt")
    return {"conversations": [{"from": "human", "value": prompt},
                              {"from": "gpt", "value": answer}]}


def _openai(line: Line) -> dict[str, Any]:
    prompt, answer = _pair(line, "openai")
    return {"messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": answer}]}


def converter(fmt: str, chat_template: ChatTemplate | None = None) -> Converter:
    """The row a line becomes in `fmt` (for parquet, the line; its columns are line_rows.py's)."""
    if fmt in LINEAGE_FORMATS:
        return lambda line: line
    if fmt == "alpaca":
        return _alpaca
    if fmt == "sharegpt":
        return _sharegpt
    if fmt == "openai":
        return _openai
    if fmt == "chatml":
        if chat_template is None:
            raise ExportError("--format chatml needs a chat template: the run's manifest has "
                              "none (the server's tokenizer has no chat template, or the run "
                              "has no manifest); give one with --chat-template FILE")
        template = chat_template

        def chatml(line: Line) -> dict[str, Any]:
            prompt, answer = _pair(line, "chatml")
            return {"text": template.render([{"role": "user", "content": prompt},
                                             {"role": "assistant", "content": answer}])}
        return chatml
    raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
