"""Token-window chunking with the model's own tokenizer.

A document is tokenized once, with character offsets. Windows over its tokens are as equal in
size as possible, never larger than the budget, and consecutive windows share exactly
`overlap` tokens, so no token is lost and there is no tiny last chunk. Each chunk keeps its token
ids (the prompt is assembled from ids, so the engine sees exactly the tokens counted here) and
its span in the original text.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .sentences import Sentence, fit_numbered


class OffsetTokenizer(Protocol):
    """What the chunker needs of a Hugging Face fast tokenizer."""

    def __call__(self, text: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class TokenizedDocument:
    text: str
    token_ids: Sequence[int]
    # (start, end) character offsets of each token in `text`.
    offsets: Sequence[tuple[int, int]]

    @property
    def token_count(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    token_ids: tuple[int, ...]
    char_start: int
    char_end: int
    # Under evidence: the chunk's text with its sentences numbered, as token ids, and the
    # sentences (offsets in `text`). The prompt then carries these ids instead of token_ids.
    numbered_ids: tuple[int, ...] | None = None
    sentences: tuple[Sentence, ...] = ()

    @property
    def token_count(self) -> int:
        return len(self.token_ids)


def tokenize_document(tokenizer: OffsetTokenizer, text: str) -> TokenizedDocument:
    encoder = _fast_encoder(tokenizer)
    if encoder is not None:
        # encode_batch, not encode: only the batch call lets go of the GIL while it works, so
        # the server's event loop keeps running beside a large document.
        encoding = encoder.encode_batch([text], add_special_tokens=False)[0]
        return TokenizedDocument(text=text, token_ids=encoding.ids, offsets=encoding.offsets)
    # split_special_tokens: a document that contains "<|eot|>" or a chat header as text must
    # not inject those control tokens into the prompt.
    encoding = tokenizer(
        text,
        add_special_tokens=False,
        return_offsets_mapping=True,
        split_special_tokens=True,
        verbose=False,  # documents are meant to be longer than the model's context
    )
    return TokenizedDocument(
        text=text,
        token_ids=list(encoding["input_ids"]),
        offsets=[(int(start), int(end)) for start, end in encoding["offset_mapping"]],
    )


_FAST_ENCODERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _fast_encoder(tokenizer: OffsetTokenizer) -> Any:
    """A private copy of a fast tokenizer's Rust backend, set as the call above sets it
    (special-token text split as plain text, no truncation or padding). Encoding with it
    directly skips the wrapper's conversions of every id and offset to Python objects: a
    third of the chunking time on small documents. None for a tokenizer without one."""
    try:
        return _FAST_ENCODERS[tokenizer]
    except KeyError:
        pass
    except TypeError:
        return None  # not weakly referenceable: use the plain call
    backend = getattr(tokenizer, "backend_tokenizer", None)
    encoder = None
    if backend is not None and hasattr(backend, "encode_special_tokens"):
        from tokenizers import Tokenizer

        encoder = Tokenizer.from_str(backend.to_str())
        encoder.encode_special_tokens = True
        encoder.no_truncation()
        encoder.no_padding()
    _FAST_ENCODERS[tokenizer] = encoder
    return encoder


def window_bounds(token_count: int, budget: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open token windows covering `token_count` tokens.

    The fewest windows of at most `budget` tokens whose neighbours overlap by exactly `overlap`;
    their sizes differ by at most one token.
    """
    if budget < 1:
        raise ValueError(f"budget must be positive, got {budget}")
    if not 0 <= overlap < budget:
        raise ValueError(f"overlap must be in [0, budget), got {overlap} with budget {budget}")
    if token_count <= budget:
        return [(0, token_count)] if token_count else []
    stride = budget - overlap
    count = -(-(token_count - overlap) // stride)  # ceil division
    # Sizes sum to token_count plus the tokens counted twice in the overlaps.
    base, extra = divmod(token_count + (count - 1) * overlap, count)
    windows = []
    start = 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        windows.append((start, end))
        start = end - overlap
    return windows


def chunk_document(document: TokenizedDocument, budget: int, overlap: int) -> list[Chunk]:
    chunks = []
    for index, (start, end) in enumerate(window_bounds(document.token_count, budget, overlap)):
        char_start = document.offsets[start][0]
        # A token may end before a later one (byte-level pieces of one character share the
        # character's span), so take the furthest end in the window.
        char_end = max(offset_end for _, offset_end in document.offsets[start:end])
        chunks.append(
            Chunk(
                index=index,
                text=document.text[char_start:char_end],
                token_ids=tuple(document.token_ids[start:end]),
                char_start=char_start,
                char_end=char_end,
            )
        )
    return chunks


def number_sentences(tokenizer: OffsetTokenizer, chunk: Chunk, room: int) -> Chunk:
    """The chunk with its sentences numbered for citing, in at most `room` tokens."""
    def encode(text: str) -> Sequence[int]:
        return tokenize_document(tokenizer, text).token_ids

    ids, sentences = fit_numbered(chunk.text, encode, room)
    return dataclasses.replace(chunk, numbered_ids=tuple(ids), sentences=tuple(sentences))
