"""Token-window chunking with the model's own tokenizer.

A document is tokenized once, with character offsets (with a byte-level tokenizer, as ids
alone, each token's offsets following from the bytes it stands for). Windows over its
tokens are as equal in size as possible, never larger than the budget, and consecutive windows
share exactly `overlap` tokens, so no token is lost and there is no tiny last chunk. Each chunk
keeps its token ids (the prompt is assembled from ids, so the engine sees exactly the tokens
counted here) and its span in the original text.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import weakref
from abc import abstractmethod
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload

import numpy as np

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


# Told, before each batch of pieces is encoded, how many tokens the document has so far and
# the most the batch can add (its UTF-8 bytes); may raise to stop the work.
TokenizeProgress = Callable[[int, int], None]


def tokenize_document(tokenizer: OffsetTokenizer, text: str,
                      progress: TokenizeProgress | None = None) -> TokenizedDocument:
    """`text` as token ids with their character offsets. A long text is encoded in batches of
    pieces; `progress` is told of each batch before it starts (and of the end), and may raise
    to stop the work there."""
    report: TokenizeProgress = progress or _no_progress
    encoder = _fast_encoder(tokenizer)
    if encoder is not None and encoder.byte_lengths is not None and (
            encoder.keeps_text or text.isascii()):
        document = _tokenize_without_offsets(encoder, text, report, encoder.byte_lengths)
        if document is not None:
            return document
    if encoder is not None:
        bounds = piece_bounds(text, PIECE_CHARS) if encoder.cuts_at_spaces else [(0, len(text))]
        if len(bounds) == 1:
            report(0, utf8_length(text))
            # encode_batch, not encode: only the batch call lets go of the GIL while it works,
            # so the server's event loop keeps running beside a large document.
            encoding = encoder.rust.encode_batch([text], add_special_tokens=False)[0]
            report(len(encoding.ids), 0)
            return TokenizedDocument(text=text, token_ids=encoding.ids, offsets=encoding.offsets)
        token_ids = array("i")
        pieces: list[tuple[int, Sequence[int]]] = []
        for group, group_bytes in _batches(text, bounds):
            report(len(token_ids), group_bytes)
            encodings = encoder.rust.encode_batch([text[start:end] for start, end in group],
                                                  add_special_tokens=False)
            for (start, _), encoding in zip(group, encodings, strict=True):
                token_ids.extend(encoding.ids)
                pieces.append((start, array("i", itertools.chain.from_iterable(
                    encoding.offsets))))
            del encodings  # the tokenizer's own objects for a batch go before the next
        report(len(token_ids), 0)
        return TokenizedDocument(text=text, token_ids=token_ids, offsets=ShiftedOffsets(pieces))
    report(0, utf8_length(text))
    # split_special_tokens: a document that contains "<|eot|>" or a chat header as text must
    # not inject those control tokens into the prompt.
    encoding = tokenizer(
        text,
        add_special_tokens=False,
        return_offsets_mapping=True,
        split_special_tokens=True,
        verbose=False,  # documents are meant to be longer than the model's context
    )
    document = TokenizedDocument(
        text=text,
        token_ids=list(encoding["input_ids"]),
        offsets=[(int(start), int(end)) for start, end in encoding["offset_mapping"]],
    )
    report(document.token_count, 0)
    return document


def _tokenize_without_offsets(encoder: _Encoder, text: str, report: TokenizeProgress,
                              byte_lengths: np.ndarray) -> TokenizedDocument | None:
    """`text` as ids alone, its offsets found from the bytes each token stands for: the
    ids-only call costs about half the call with offsets, and the offsets are kept as arrays
    (4 bytes a token and 1 a byte of non-ASCII text, not a tuple a token). None where the
    bytes do not add up to the text's, which _offsets_follow_from_bytes is there to rule out."""
    is_ascii = text.isascii()
    utf8 = None if is_ascii else _utf8_of(text)
    if not is_ascii and utf8 is None:
        return None
    bounds = piece_bounds(text, PIECE_CHARS) if encoder.cuts_at_spaces else [(0, len(text))]
    token_ids = array("i")
    for group, group_bytes in _batches(text, bounds):
        report(len(token_ids), group_bytes)
        # The batch call lets go of the GIL while it works (see tokenize_document).
        for encoding in encoder.rust.encode_batch_fast(
                [text[start:end] for start, end in group], add_special_tokens=False):
            token_ids.extend(encoding.ids)
    report(len(token_ids), 0)
    ids = np.frombuffer(token_ids, dtype=np.int32) if token_ids else np.zeros(0, np.int32)
    text_bytes = len(text) if utf8 is None else len(utf8)
    token_bounds = np.zeros(len(ids) + 1, dtype=np.int32 if text_bytes < 2**31 else np.int64)
    np.cumsum(byte_lengths[ids], out=token_bounds[1:])
    if int(token_bounds[-1]) != text_bytes:
        return None
    return TokenizedDocument(text=text, token_ids=token_ids,
                             offsets=AdjacentOffsets(token_bounds, utf8))


def _utf8_of(text: str) -> np.ndarray | None:
    try:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    except UnicodeEncodeError:  # a lone surrogate: the call with offsets handles it
        return None


def _no_progress(tokens: int, batch_limit: int) -> None:
    return None


def utf8_length(text: str) -> int:
    """Bytes of `text` in UTF-8, which bound the tokens a byte-level tokenizer makes of it."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _batches(text: str, bounds: list[tuple[int, int]]
             ) -> Iterator[tuple[list[tuple[int, int]], int]]:
    """Consecutive pieces, grouped up to BATCH_BYTES of text (a piece more than that alone),
    each group with its size in UTF-8 bytes."""
    group: list[tuple[int, int]] = []
    size = 0
    for start, end in bounds:
        piece = utf8_length(text[start:end])
        if group and size + piece > BATCH_BYTES:
            yield group, size
            group, size = [], 0
        group.append((start, end))
        size += piece
    if group:
        yield group, size


# A document longer than this is encoded in pieces of about this many characters, cut at lone
# spaces, in batches: the tokenizer slows on one long text (4 M characters a second at 10
# thousand, 1.2 M at 16 million, on these machines), a batch is spread over the cores, and
# between batches the work can be stopped and its memory counted.
PIECE_CHARS = 65_536
# Text per batch: the tokenizer's own objects for a whole large document at once cost more
# than the batches (and hold far more memory). 8 pieces of English; fewer of other scripts,
# which make more tokens per character.
BATCH_BYTES = 8 * PIECE_CHARS


def piece_bounds(text: str, size: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive pieces covering `text`, each cut just before a lone space
    (one space between two other characters) in the second half of its `size` characters.
    Where there is no such space the piece is cut at `size` characters: the tokens next to
    such a cut may differ from those of the whole text (a word split in two), which only text
    without spaces for over half a piece (CJK, hostile input) meets."""
    bounds = []
    start = 0
    while len(text) - start > size:
        cut = _lone_space_before(text, start + size, start + size // 2)
        if cut is None:
            cut = start + size
        bounds.append((start, cut))
        start = cut
    bounds.append((start, len(text)))
    return bounds


def _lone_space_before(text: str, high: int, low: int) -> int | None:
    at = text.rfind(" ", low, high)
    while at > low:
        if _is_lone_space(text, at):
            return at
        at = text.rfind(" ", low, at)
    return None


def _is_lone_space(text: str, at: int) -> bool:
    return (0 < at < len(text) - 1 and text[at] == " " and not text[at - 1].isspace()
            and not text[at + 1].isspace())


class StoredOffsets(Sequence[tuple[int, int]]):
    """A document's token offsets, kept compactly and read as (start, end) pairs."""

    @overload
    def __getitem__(self, index: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, int] | list[tuple[int, int]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._offsets_of(index)

    @abstractmethod
    def _offsets_of(self, index: int) -> tuple[int, int]:
        """The (start, end) of token `index`, which is in range."""

    @abstractmethod
    def furthest_end(self, start: int, end: int) -> int:
        """max(offset end) over tokens [start, end), without building their offsets."""


class ShiftedOffsets(StoredOffsets):
    """The offsets of a document encoded in pieces: each piece's own offsets, flat (start, end,
    start, end, ...), moved by where the piece starts when read rather than copied. Flat int
    arrays cost 8 bytes a token, where lists of tuples cost about 120."""

    def __init__(self, pieces: list[tuple[int, Sequence[int]]]) -> None:
        self._shifts = [shift for shift, _ in pieces]
        self._pieces = [flat for _, flat in pieces]
        self._firsts = list(itertools.accumulate((len(p) // 2 for p in self._pieces[:-1]),
                                                 initial=0))
        self._length = sum(len(p) // 2 for p in self._pieces)

    @classmethod
    def of_pairs(cls, pieces: list[tuple[int, list[tuple[int, int]]]]) -> ShiftedOffsets:
        """From each piece's offsets as (start, end) pairs."""
        return cls([(shift, [value for pair in pairs for value in pair])
                    for shift, pairs in pieces])

    def __len__(self) -> int:
        return self._length

    def _offsets_of(self, index: int) -> tuple[int, int]:
        piece = bisect.bisect_right(self._firsts, index) - 1
        at = 2 * (index - self._firsts[piece])
        flat = self._pieces[piece]
        shift = self._shifts[piece]
        return flat[at] + shift, flat[at + 1] + shift

    def furthest_end(self, start: int, end: int) -> int:
        furthest = 0
        piece = bisect.bisect_right(self._firsts, start) - 1
        while start < end:
            first = self._firsts[piece]
            stop = min(end, first + len(self._pieces[piece]) // 2)
            if stop > start:  # a piece may have no tokens at all
                ends = self._pieces[piece][2 * (start - first) + 1:2 * (stop - first):2]
                furthest = max(furthest, max(ends) + self._shifts[piece])
                start = stop
            piece += 1
        return furthest


class AdjacentOffsets(StoredOffsets):
    """The offsets of tokens that cover a text's bytes end to end: token i stands for bytes
    bounds[i] to bounds[i + 1]. In ASCII those are its characters. Otherwise a token runs from
    the character holding its first byte to just past the one holding its last, as the
    tokenizer reports it (a character split over two tokens is in both); characters are
    counted when asked for, from a count kept per block of bytes."""

    _BLOCK = 4096

    def __init__(self, bounds: np.ndarray, utf8: np.ndarray | None = None) -> None:
        self._bounds = bounds
        self._utf8 = utf8
        if utf8 is not None:
            # Characters starting before each block: every byte but UTF-8's continuation ones.
            starts = np.add.reduceat(_character_starts(utf8), np.arange(0, len(utf8), self._BLOCK)
                                     ) if len(utf8) else np.zeros(0, np.int64)
            self._chars_before_block = np.concatenate(([0], np.cumsum(starts)))

    def __len__(self) -> int:
        return len(self._bounds) - 1

    def _offsets_of(self, index: int) -> tuple[int, int]:
        start, end = int(self._bounds[index]), int(self._bounds[index + 1])
        if self._utf8 is None:
            return start, end
        if start == end:
            return (at := self._chars_before(start)), at
        return self._chars_before(start + 1) - 1, self._chars_before(end)

    def furthest_end(self, start: int, end: int) -> int:
        """The end of token end - 1: no token ends after a later one's."""
        return self[end - 1][1]

    def _chars_before(self, byte: int) -> int:
        """Characters that start before `byte`."""
        if self._utf8 is None:
            return byte
        block = byte // self._BLOCK
        counted = int(self._chars_before_block[block])
        return counted + int(np.count_nonzero(
            _character_starts(self._utf8[block * self._BLOCK:byte])))


def _character_starts(utf8: np.ndarray) -> np.ndarray:
    return (utf8 & 0xC0) != 0x80  # type: ignore[no-any-return]


def _furthest_end(offsets: Sequence[tuple[int, int]], start: int, end: int) -> int:
    if isinstance(offsets, StoredOffsets):
        return offsets.furthest_end(start, end)
    return max(offset_end for _, offset_end in offsets[start:end])


@dataclass(frozen=True)
class _Encoder:
    rust: Any
    # Whether cutting a text at lone spaces leaves its tokens as they were (see _cuts_cleanly).
    cuts_at_spaces: bool
    # The bytes of text each token id stands for, where they give the offsets of ASCII text
    # (see _offsets_follow_from_bytes); else None.
    byte_lengths: np.ndarray | None
    # No normalizer: the bytes the tokens stand for are the text's own in every script, not
    # only in ASCII (which NFC and NFKC leave as it is).
    keeps_text: bool


_FAST_ENCODERS: weakref.WeakKeyDictionary[Any, _Encoder | None] = weakref.WeakKeyDictionary()

# Cut at each of its lone spaces, this text must encode to the same tokens as whole: words,
# numbers, punctuation, other scripts, runs of spaces and a line break on either side of a cut.
_CUT_PROBE = ("Lighthouses guide ships, at night (mostly) with 12 lamps - and 3.5 knots; "
              "\"quoted\" words  twice   spaced\nand a new line, 灯台 маяк faro 🏝️ end.")


def _fast_encoder(tokenizer: OffsetTokenizer) -> _Encoder | None:
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

        rust = Tokenizer.from_str(backend.to_str())
        rust.encode_special_tokens = True
        rust.no_truncation()
        rust.no_padding()
        encoder = _Encoder(rust, _cuts_cleanly(rust), *_byte_lengths(rust))
    _FAST_ENCODERS[tokenizer] = encoder
    return encoder


def _cuts_cleanly(rust: Any) -> bool:
    """Whether encoding the probe in pieces cut at its lone spaces gives the tokens and
    offsets of encoding it whole. A tokenizer that marks the start of every text (a prefix
    space or a Metaspace prepended to each piece) does not, and is never cut."""
    whole = rust.encode(_CUT_PROBE, add_special_tokens=False)
    cuts = [at for at in range(len(_CUT_PROBE)) if _is_lone_space(_CUT_PROBE, at)]
    bounds = list(zip([0, *cuts], [*cuts, len(_CUT_PROBE)], strict=True))
    pieces = rust.encode_batch([_CUT_PROBE[a:b] for a, b in bounds], add_special_tokens=False)
    ids = [token for piece in pieces for token in piece.ids]
    offsets = ShiftedOffsets.of_pairs([(a, piece.offsets) for (a, _), piece in zip(
        bounds, pieces, strict=True)])
    return bool(ids == whole.ids and offsets[:] == whole.offsets)


# ASCII of every kind a document holds: words, numbers, punctuation, runs of spaces, tabs and
# line breaks, contractions, code, and a trailing space. It starts with a letter, as most
# documents do: a tokenizer that adds a space before each text does not pass.
_ASCII_PROBE = ("Lighthouses guide ships, at night (mostly) with 12 lamps - and 3.5 knots;\n"
                "\"quoted\" words  twice   spaced\tand tabbed,\r\n\nit's isn't we'll 1,234,567"
                " x=f(y)[0]; {a: 'b'} <tag/> #!~`^|\\ ALL CAPS CamelCase snake_case end. ")


# Beyond ASCII: accents precomposed and combining, typographic punctuation, scripts of two to
# four bytes a character, emoji joined and with a variation selector.
_UNICODE_PROBE = ("Café naïve façade — “quoted” ‘single’ … e\u0301 Ελληνικά маяк 灯台の光 "
                  "등대 मीनार 🏝️ 👩‍👩‍👧 ½ ﬁ end")


def _byte_lengths(rust: Any) -> tuple[np.ndarray | None, bool]:
    """How many bytes of text each token id stands for, where a byte-level tokenizer's offsets
    of ASCII text follow from them (else None), and whether they do for every script too."""
    config = json.loads(rust.to_str())
    if (config.get("decoder") or {}).get("type") != "ByteLevel":
        return None, False  # its vocabulary's characters are not one byte each
    added = rust.get_added_tokens_decoder()
    normalizer = config.get("normalizer")
    # A probe cannot show that every text keeps its length: only normalizers that leave ASCII
    # as it is, and no added token matched in its normalized form other than its own.
    if normalizer is not None and (not _keeps_ascii(normalizer) or any(
            token.normalized and not token.content.isascii() for token in added.values())):
        return None, False
    vocabulary = rust.get_vocab(with_added_tokens=True)
    lengths = np.zeros(max(vocabulary.values(), default=0) + 1, dtype=np.int32)
    for token, token_id in vocabulary.items():
        lengths[token_id] = (len(added[token_id].content.encode("utf-8")) if token_id in added
                             else len(token))
    added_text = " ".join(token.content for token in added.values())
    ascii_probe = _ASCII_PROBE + "".join(c for c in added_text if c.isascii())
    if not _offsets_follow_from_bytes(rust, lengths, ascii_probe):
        return None, False
    keeps_text = normalizer is None and _offsets_follow_from_bytes(
        rust, lengths, _UNICODE_PROBE + " " + added_text + " " + _CUT_PROBE)
    return lengths, keeps_text


_ASCII_KEEPING_NORMALIZERS = frozenset({"NFC", "NFD", "NFKC", "NFKD", "Lowercase"})


def _keeps_ascii(normalizer: dict[str, Any]) -> bool:
    """Whether a normalizer (from the tokenizer's JSON) leaves each ASCII character one
    character: Unicode normal forms and lowercasing, alone or in sequence."""
    if normalizer.get("type") == "Sequence":
        return all(_keeps_ascii(part) for part in normalizer.get("normalizers", []))
    return normalizer.get("type") in _ASCII_KEEPING_NORMALIZERS


def _offsets_follow_from_bytes(rust: Any, lengths: np.ndarray, probe: str) -> bool:
    """Whether the offsets found from `lengths` are those the tokenizer gives for `probe`
    (not so where a normalizer changes the text or offsets are trimmed of spaces)."""
    encoding = rust.encode(probe, add_special_tokens=False)
    bounds = np.concatenate(([0], np.cumsum(lengths[np.array(encoding.ids, dtype=np.int64)])))
    utf8 = None if probe.isascii() else _utf8_of(probe)
    if int(bounds[-1]) != (len(probe) if utf8 is None else len(utf8)):
        return False
    return bool(AdjacentOffsets(bounds, utf8)[:] == encoding.offsets)


@dataclass(frozen=True)
class Windows(Sequence[tuple[int, int]]):
    """Half-open token windows covering `token_count` tokens: the fewest of at most `budget`
    tokens whose neighbours overlap by exactly `overlap`; their sizes differ by at most one
    token. Computed, not stored: how many there are, and any one of them, is known before a
    chunk is built."""

    token_count: int
    budget: int
    overlap: int

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ValueError(f"budget must be positive, got {self.budget}")
        if not 0 <= self.overlap < self.budget:
            raise ValueError(f"overlap must be in [0, budget), got {self.overlap} with budget "
                             f"{self.budget}")

    def __len__(self) -> int:
        if self.token_count <= self.budget:
            return 1 if self.token_count else 0
        stride = self.budget - self.overlap
        return -(-(self.token_count - self.overlap) // stride)  # ceil division

    @property
    def total_tokens(self) -> int:
        """Tokens in all windows together: the document's, plus those the overlaps repeat."""
        return self.token_count + max(len(self) - 1, 0) * self.overlap

    @overload
    def __getitem__(self, index: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, int] | list[tuple[int, int]]:
        count = len(self)
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(count))]
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(index)
        # Sizes sum to token_count plus the tokens counted twice in the overlaps; the first
        # `extra` windows are one token longer.
        base, extra = divmod(self.total_tokens, count)
        start = index * (base - self.overlap) + min(index, extra)
        return start, start + base + (1 if index < extra else 0)


def window_bounds(token_count: int, budget: int, overlap: int) -> list[tuple[int, int]]:
    return list(Windows(token_count, budget, overlap))


def chunk_document(document: TokenizedDocument, budget: int, overlap: int,
                   indexes: Sequence[int] | None = None) -> list[Chunk]:
    """The document's chunks, or only those at `indexes` (each in range)."""
    windows = Windows(document.token_count, budget, overlap)
    chunks = []
    for index in range(len(windows)) if indexes is None else indexes:
        start, end = windows[index]
        char_start = document.offsets[start][0]
        # A token may end before a later one (byte-level pieces of one character share the
        # character's span), so take the furthest end in the window.
        char_end = _furthest_end(document.offsets, start, end)
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


def token_ids_of(tokenizer: OffsetTokenizer, text: str) -> Sequence[int]:
    """The token ids `tokenize_document` gives a short text (a chunk, a record), without the
    offsets: the fast tokenizer's ids-only call is about a quarter cheaper, and these texts
    are tokenized per chunk and per record."""
    encoder = _fast_encoder(tokenizer)
    if encoder is None or len(text) > PIECE_CHARS:
        return tokenize_document(tokenizer, text).token_ids
    # The batch call, as in tokenize_document: it lets go of the GIL while it works.
    ids: Sequence[int] = encoder.rust.encode_batch_fast([text], add_special_tokens=False)[0].ids
    return ids


def number_sentences(tokenizer: OffsetTokenizer, chunk: Chunk, room: int) -> Chunk:
    """The chunk with its sentences numbered for citing, in at most `room` tokens."""
    def encode(text: str) -> Sequence[int]:
        return token_ids_of(tokenizer, text)

    ids, sentences = fit_numbered(chunk.text, encode, room)
    return dataclasses.replace(chunk, numbered_ids=tuple(ids), sentences=tuple(sentences))
