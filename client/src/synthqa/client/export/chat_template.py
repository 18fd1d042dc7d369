"""A model's chat template rendered outside the model's tokenizer, for `export --format chatml`.

Rendered the way Hugging Face tokenizers render theirs, so a record reads as the model was
trained to read a conversation: Jinja2 in a sandbox (a template is code from a model
repository), blocks trimmed, `raise_exception` and `strftime_now` available, the special tokens
by name, `add_generation_prompt` false (the assistant's turn is in the record). Needs the
`dataset` extra (Jinja2)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ExportError


class ChatTemplate:
    def __init__(self, template: str, special_tokens: Mapping[str, str], origin: str) -> None:
        try:
            from jinja2 import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError:
            raise ExportError("--format chatml needs Jinja2: pip install "
                              "'synthqa-client[dataset]'") from None
        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        environment.globals["raise_exception"] = _raise_exception
        environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        environment.filters["tojson"] = lambda value, indent=None: json.dumps(
            value, ensure_ascii=False, indent=indent)
        self.origin = origin
        self._special_tokens = dict(special_tokens)
        self._errors: tuple[type[Exception], ...] = (TemplateError, TemplateRaised)
        try:
            self._template = environment.from_string(template)
        except TemplateError as error:
            raise ExportError(f"the chat template of {origin} does not parse: {error}") from None

    def render(self, messages: list[dict[str, str]]) -> str:
        try:
            return self._template.render(messages=messages, add_generation_prompt=False,
                                         **self._special_tokens)
        except self._errors as error:
            raise ExportError(f"the chat template of {self.origin} refused a record: "
                              f"{error}") from None

    @classmethod
    def from_file(cls, path: Path, special_tokens: Mapping[str, str]) -> ChatTemplate:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ExportError(f"--chat-template {path}: {error}") from None
        return cls(text, special_tokens, str(path))

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any] | None) -> ChatTemplate | None:
        """The template GetServerInfo gave the run, as its manifest recorded it."""
        server = (manifest or {}).get("server") or {}
        recorded = server.get("chat_template") or {}
        if not recorded.get("template"):
            return None
        return cls(recorded["template"], recorded.get("special_tokens") or {},
                   f"the model {server.get('model', '?')}")


class TemplateRaised(Exception):
    """A template's own `raise_exception(...)`: it refuses the conversation."""


def _raise_exception(message: str) -> None:
    raise TemplateRaised(message)


def special_tokens_of(manifest: Mapping[str, Any] | None) -> dict[str, str]:
    server = (manifest or {}).get("server") or {}
    return dict((server.get("chat_template") or {}).get("special_tokens") or {})
