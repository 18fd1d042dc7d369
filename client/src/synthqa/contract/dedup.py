"""Duplicate records: the same text once normalised (case, width, punctuation and spacing
ignored), or a near copy, found with MinHash and locality-sensitive hashing (datasketch) over
character 4-grams and confirmed by their exact Jaccard similarity.

One implementation for both places that dedup: the server within one call (`dedup`), the
CLI's export across a whole run (`export --dedup`, `--exclude-near`), so that a threshold
means the same in both. datasketch comes with the server and with the client's `dataset`
extra; the base client never imports this module."""

from __future__ import annotations

import re
import unicodedata

from datasketch import MinHash, MinHashLSH

# Shingles: character n-grams work for text with or without spaces between words.
_SHINGLE_CHARS = 4
_PERMUTATIONS = 64
_SPACES = re.compile(r"\s+")
# The permutations every signature uses, made once: datasketch otherwise draws them again for
# each MinHash, which was a fifth of the server's CPU with dedup on (the replay ceiling).
_TEMPLATE = MinHash(num_perm=_PERMUTATIONS)


class _PunctuationToSpace(dict[int, int | str]):
    """A `str.translate` table that turns punctuation into spaces, filled as characters are
    first seen: a lookup per character in C instead of a category check in Python (3× faster
    per record). It stops growing at `_CACHED_CHARACTERS`, so text of every script cannot
    make it large."""

    def __missing__(self, code: int) -> int | str:
        value: int | str = " " if unicodedata.category(chr(code)).startswith("P") else code
        if len(self) < _CACHED_CHARACTERS:
            self[code] = value
        return value


_CACHED_CHARACTERS = 65_536
_PUNCTUATION_TO_SPACE = _PunctuationToSpace()


def normalise(text: str) -> str:
    """Text as compared: NFKC, case-folded, punctuation removed, spacing collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", folded.translate(_PUNCTUATION_TO_SPACE)).strip()


def shingles(normalised: str) -> set[str]:
    if len(normalised) <= _SHINGLE_CHARS:
        return {normalised}
    return {normalised[i:i + _SHINGLE_CHARS]
            for i in range(len(normalised) - _SHINGLE_CHARS + 1)}


class Deduplicator:
    """Remembers the records a call kept. `threshold` is the Jaccard similarity of two
    records' shingles from which the later one is a near duplicate; 1.0 finds exact (after
    normalising) duplicates only."""

    def __init__(self, threshold: float) -> None:
        self._threshold = threshold
        self._exact: set[str] = set()
        self._near = (MinHashLSH(threshold=threshold, num_perm=_PERMUTATIONS)
                      if threshold < 1 else None)
        self._shingles: dict[str, set[str]] = {}

    def duplicate_of_kept(self, text: str) -> bool:
        """Whether `text` repeats a record already kept."""
        key = normalise(text)
        return self._repeats(key, None if self._near is None else self._signature(key))

    def keep(self, text: str) -> bool:
        """Keep `text` unless it repeats a record kept since it was checked (records of one
        call are checked concurrently). True if kept."""
        key = normalise(text)
        signature = None if self._near is None else self._signature(key)
        if self._repeats(key, signature):
            return False
        self._exact.add(key)
        if self._near is not None and signature is not None:
            name = str(len(self._shingles))
            self._shingles[name] = signature[0]
            self._near.insert(name, signature[1])
        return True

    def _repeats(self, key: str, signature: tuple[set[str], MinHash] | None) -> bool:
        if key in self._exact:
            return True
        if self._near is None or signature is None:
            return False
        own, minhash = signature
        for candidate in self._near.query(minhash):
            other = self._shingles[candidate]
            if len(own & other) / len(own | other) >= self._threshold:
                return True
        return False

    @staticmethod
    def _signature(key: str) -> tuple[set[str], MinHash]:
        own = shingles(key)
        minhash = MinHash(num_perm=_PERMUTATIONS, permutations=_TEMPLATE.permutations,
                          scheme=_TEMPLATE.scheme)
        minhash.update_batch([shingle.encode() for shingle in own])
        return own, minhash
