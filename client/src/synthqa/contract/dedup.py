"""Duplicate records: the same text once normalised (case, width, punctuation and spacing
ignored), or a near copy, found with MinHash and locality-sensitive hashing (datasketch) over
character 4-grams and confirmed by their exact Jaccard similarity.

One implementation for both places that dedup: the server within one call (`dedup`), the
CLI's export across a whole run (`export --dedup`, `--exclude-near`), so that a threshold
means the same in both. datasketch comes with the server and with the client's `dataset`
extra; the base client never imports this module.

The server runs this on its event loop for every record, so a record's signature is computed
with a few numpy operations over all its 4-grams at once (datasketch's own `update_batch`
hashes each shingle with SHA-1 in Python, about 5x slower per record); the signature is the one
datasketch's `MinHash` would give for the same 4-gram hashes (checked by a test)."""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np
from datasketch import MinHash, MinHashLSH

# Shingles: character n-grams work for text with or without spaces between words.
_SHINGLE_CHARS = 4
_PERMUTATIONS = 64
_SPACES = re.compile(r"\s+")
# The permutations every signature uses, made once: datasketch otherwise draws them again for
# each MinHash, which was a fifth of the server's CPU with dedup on (the replay ceiling).
_TEMPLATE = MinHash(num_perm=_PERMUTATIONS)
_PERMUTATION_A, _PERMUTATION_B = _TEMPLATE.permutations
_LOW_32_BITS = np.uint64(0xFFFF_FFFF)


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


def _murmur_finalizer(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: a bijection that spreads every input bit over all 64."""
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xC4CEB9FE1A85EC53)
    mixed: np.ndarray = values ^ (values >> np.uint64(33))
    return mixed


def shingle_hashes(normalised: str) -> np.ndarray:
    """A 32-bit hash of each of `shingles(normalised)` (one per position, repeats included: a
    minimum does not mind them). A 4-gram's four code points are packed 16 bits apart into 64
    (exact for the Basic Multilingual Plane; beyond it, bits overlap: two 4-grams may then share
    a hash, which only blurs the estimate that exact Jaccard confirms) and finalized."""
    codes = np.frombuffer(normalised.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(codes) < _SHINGLE_CHARS:
        # The whole text is its one shingle, padded with zeros (a text with NUL in it may then
        # share a hash with a shorter one, which only blurs the estimate).
        codes = np.concatenate([codes, np.zeros(_SHINGLE_CHARS - len(codes), np.uint64)])
    end = len(codes) - _SHINGLE_CHARS + 1
    packed = (codes[:end] << np.uint64(48)) ^ (codes[1:end + 1] << np.uint64(32)) \
        ^ (codes[2:end + 2] << np.uint64(16)) ^ codes[3:end + 3]
    return (_murmur_finalizer(packed) & _LOW_32_BITS).astype(np.uint32)


def _minhash(normalised: str) -> MinHash:
    """The MinHash of `normalised`'s shingles: datasketch's affine32 scheme (its 32-bit
    finalizer, then `a * h + b` modulo 2^32 per permutation, the minimum over shingles),
    over all shingles at once."""
    hashes = shingle_hashes(normalised)
    hashes = hashes ^ (hashes >> np.uint32(16))
    hashes = hashes * np.uint32(0x85EBCA6B)
    hashes = hashes ^ (hashes >> np.uint32(13))
    hashes = hashes * np.uint32(0xC2B2AE35)
    hashes = hashes ^ (hashes >> np.uint32(16))
    permuted = hashes[:, None] * _PERMUTATION_A + _PERMUTATION_B
    return MinHash(hashvalues=permuted.min(axis=0), permutations=_TEMPLATE.permutations,
                   scheme=_TEMPLATE.scheme)


# How the LSH's bands are chosen: a missed near copy is a duplicate in the dataset, while a
# false candidate costs one exact Jaccard check. With datasketch's default, even weights, half
# the near copies just above 0.85 were never candidates (`make bench-dedup`, recall).
_FALSE_POSITIVE_WEIGHT, _FALSE_NEGATIVE_WEIGHT = 0.05, 0.95


@functools.lru_cache(maxsize=32)
def _bands(threshold: float) -> tuple[int, int]:
    """The LSH's bands and rows for `threshold`: datasketch finds them by numerical
    integration, about 10 ms, which the server would otherwise pay for every call."""
    lsh = MinHashLSH(threshold=threshold, num_perm=_PERMUTATIONS,
                     weights=(_FALSE_POSITIVE_WEIGHT, _FALSE_NEGATIVE_WEIGHT))
    return lsh.b, lsh.r


class _Fingerprint:
    """A text as compared: its normalised key, and its MinHash when asked for."""

    __slots__ = ("text", "key", "_minhash")

    def __init__(self, text: str) -> None:
        self.text = text
        self.key = normalise(text)
        self._minhash: MinHash | None = None

    @property
    def minhash(self) -> MinHash:
        if self._minhash is None:
            self._minhash = _minhash(self.key)
        return self._minhash


class Deduplicator:
    """Remembers the records a call kept. `threshold` is the Jaccard similarity of two
    records' shingles from which the later one is a near duplicate; 1.0 finds exact (after
    normalising) duplicates only."""

    def __init__(self, threshold: float) -> None:
        self._threshold = threshold
        self._exact: set[str] = set()
        self._near = (MinHashLSH(num_perm=_PERMUTATIONS, params=_bands(threshold))
                      if threshold < 1 else None)
        # Kept keys by LSH name; their shingle sets are made when a candidate needs them.
        self._kept_keys: list[str] = []
        self._kept_shingles: dict[int, set[str]] = {}
        # The text last asked about: `duplicate_of_kept` then `keep` of one text (the
        # server's review of a record) normalise and hash it once.
        self._last: _Fingerprint | None = None

    def duplicate_of_kept(self, text: str) -> bool:
        """Whether `text` repeats a record already kept."""
        return self._repeats(self._fingerprint(text))

    def keep(self, text: str) -> bool:
        """Keep `text` unless it repeats a record kept since it was checked (records of one
        call are checked concurrently). True if kept."""
        fingerprint = self._fingerprint(text)
        if self._repeats(fingerprint):
            return False
        self._exact.add(fingerprint.key)
        if self._near is not None:
            self._near.insert(len(self._kept_keys), fingerprint.minhash)
            self._kept_keys.append(fingerprint.key)
        return True

    def _fingerprint(self, text: str) -> _Fingerprint:
        if self._last is None or self._last.text != text:
            self._last = _Fingerprint(text)
        return self._last

    def _repeats(self, fingerprint: _Fingerprint) -> bool:
        if fingerprint.key in self._exact:
            return True
        if self._near is None:
            return False
        candidates = self._near.query(fingerprint.minhash)
        if not candidates:
            return False
        own = shingles(fingerprint.key)
        for candidate in candidates:
            other = self._kept_shingles.get(candidate)
            if other is None:
                other = self._kept_shingles[candidate] = shingles(self._kept_keys[candidate])
            if len(own & other) / len(own | other) >= self._threshold:
                return True
        return False
