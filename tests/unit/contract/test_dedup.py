"""Duplicates within a call: exact once normalised, near copies by Jaccard similarity."""

from __future__ import annotations

from synthqa.contract.dedup import Deduplicator, normalise, shingles


def test_normalising_ignores_case_width_punctuation_and_spacing() -> None:
    assert normalise("  What did FRESNEL invent,  in 1822?! ") == "what did fresnel invent in 1822"
    assert normalise("ＡＢＣ　def") == "abc def"
    assert normalise("灯台は、夜に光る。") == "灯台は 夜に光る"


def test_exact_repeats_only_at_threshold_one() -> None:
    dedup = Deduplicator(1.0)
    assert dedup.keep("What did Fresnel invent?")
    assert not dedup.keep("what did fresnel invent")
    assert dedup.keep("What did Fresnel invent in 1822?")  # near, but only exact counts


def test_near_copies_are_found_above_the_threshold_only() -> None:
    first = "What did Augustin Fresnel present in 1822?"
    near = "What did Augustin Fresnel present in 1823?"
    other = "Where did the Pharos of Alexandria stand?"
    a, b = shingles(normalise(first)), shingles(normalise(near))
    similarity = len(a & b) / len(a | b)
    assert 0.7 < similarity < 0.95
    strict = Deduplicator(0.95)
    assert strict.keep(first) and strict.keep(near) and strict.keep(other)
    loose = Deduplicator(0.7)
    assert loose.keep(first) and not loose.keep(near) and loose.keep(other)
    assert loose.duplicate_of_kept(near) and not loose.duplicate_of_kept("Who built it?")


def test_many_records_stay_distinct() -> None:
    dedup = Deduplicator(0.85)
    kept = sum(dedup.keep(f"Question number {n} about lighthouse {n * 7919 % 1000}")
               for n in range(500))
    assert kept > 400


def test_signatures_are_datasketchs_own_with_the_permutations_made_once() -> None:
    # Shared permutations must give every record the signature a fresh MinHash would: a
    # threshold means what it meant before, and in the server and the export alike.
    import numpy as np
    from datasketch import MinHash

    for text in ("What did Fresnel invent?", "灯台は夜に光る", "a"):
        own, signature = Deduplicator._signature(normalise(text))
        fresh = MinHash(num_perm=len(signature.hashvalues))
        fresh.update_batch([shingle.encode() for shingle in own])
        assert np.array_equal(signature.hashvalues, fresh.hashvalues), text


def test_normalising_is_the_same_for_every_character_and_its_table_stays_bounded() -> None:
    import unicodedata

    from synthqa.contract import dedup

    sample = "".join(chr(code) for code in range(0x20, 0x3000, 7)) + "«»¿¡—–…・。、"
    expected = " ".join("".join(
        " " if unicodedata.category(c).startswith("P") else c
        for c in unicodedata.normalize("NFKC", sample).casefold()).split())
    assert normalise(sample) == expected
    normalise("".join(chr(code) for code in range(0x4E00, 0x4E00 + 80_000)))
    assert len(dedup._PUNCTUATION_TO_SPACE) <= dedup._CACHED_CHARACTERS
