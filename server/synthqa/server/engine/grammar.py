"""A JSON schema as the xgrammar grammar vLLM would build from it, made once per schema.

vLLM validates a request's JSON schema by converting it to a grammar again on every request
(2.7 ms for the pair schema on these machines, holding the GIL), before the engine compiles
it. Sent as EBNF text, the same check takes 0.2 ms, and the engine caches compiled grammars
by their text, so each distinct schema is converted here once.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any


def json_schema_grammar(schema: dict[str, Any]) -> str:
    # Key order kept: the grammar writes properties in the schema's order.
    return _grammar_from_schema_text(json.dumps(schema))


def built_here(grammar: object) -> bool:
    """Whether `grammar` is a text `json_schema_grammar` made (and still remembers): xgrammar
    printed it, so xgrammar parses it, and vLLM's check of it per request can be skipped."""
    return isinstance(grammar, str) and grammar in _BUILT


@functools.lru_cache(maxsize=256)
def _grammar_from_schema_text(schema_text: str) -> str:
    import xgrammar

    # As vLLM compiles a JSON schema when free whitespace is disabled, which synthqa forces.
    grammar = str(xgrammar.Grammar.from_json_schema(schema_text, any_whitespace=False,
                                                    separators=(",", ":")))
    if len(_BUILT) < _BUILT_LIMIT:
        _BUILT.add(grammar)
    return grammar


# Grammars made above. Bounded: one made after the limit is only checked by vLLM again.
_BUILT_LIMIT = 4096
_BUILT: set[str] = set()


class GrammarCheck:
    """Whether the grammar of a caller's schema compiles for this model's vocabulary, found
    out before the engine is asked (a grammar that fails there fails every chunk of the call).

    One check runs at a time, in a thread; a schema whose grammar takes longer than
    `timeout_seconds` to compile is refused. Schemas that passed are remembered."""

    def __init__(self, tokenizer: Any, timeout_seconds: float = 10.0) -> None:
        self._tokenizer = tokenizer
        self._timeout = timeout_seconds
        self._compiler: Any = None
        self._passed: set[str] = set()
        self._one_at_a_time = asyncio.Lock()

    async def problem(self, schema: dict[str, Any]) -> str | None:
        """Why the schema's grammar cannot be used, or None."""
        text = json.dumps(schema)
        if text in self._passed:
            return None
        try:
            grammar = json_schema_grammar(schema)
        except RuntimeError as error:
            return f"the output grammar cannot be built from it: {_xgrammar_reason(error)}"
        try:
            async with asyncio.timeout(self._timeout):
                async with self._one_at_a_time:
                    await asyncio.shield(asyncio.to_thread(self._compile, grammar))
        except TimeoutError:
            return (f"its output grammar did not compile within {self._timeout:g} s; "
                    "simplify it (fewer alternatives, shorter bounds)")
        except RuntimeError as error:
            return f"its output grammar does not compile: {_xgrammar_reason(error)}"
        if len(self._passed) < 4096:
            self._passed.add(text)
        return None

    def _compile(self, grammar: str) -> None:
        import xgrammar

        if self._compiler is None:
            info = xgrammar.TokenizerInfo.from_huggingface(self._tokenizer)
            # Set as vLLM's xgrammar backend sets it: with the cache on, compiling checks
            # more (a repetition like x{0,5000} passes without it and fails in the engine).
            self._compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=True,
                                                      cache_limit_bytes=64 * 1024 * 1024)
        self._compiler.compile_grammar(grammar)


def _xgrammar_reason(error: Exception) -> str:
    """xgrammar's message without its source location prefix."""
    if "per_rule_fsm_hashes" in str(error):
        return ("a repetition bound is too large for the output grammar (keep counts such as "
                "{0,N} in patterns at 128 or below)")
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return first_line.split(": ", 1)[-1] if first_line.startswith("[") else first_line
