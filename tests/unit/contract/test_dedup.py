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


def test_nearly_every_near_copy_at_or_above_the_threshold_is_found() -> None:
    # Pairs of short questions one word apart: most sit just above or below a threshold,
    # where LSH misses most. Exact Jaccard confirms every candidate, so none below is dropped.
    import random

    rng = random.Random(3)
    words = ("lamp lens tower keeper coast light beam signal harbour storm rock island "
             "fresnel prism glass oil wick clockwork fog horn ship reef cape bay").split()
    pairs = []
    for _ in range(400):
        chosen = [rng.choice(words) for _ in range(rng.randint(12, 24))]
        changed = list(chosen)
        changed[rng.randrange(len(changed))] = "lighthouse"
        pairs.append((" ".join(chosen), " ".join(changed)))
    for threshold in (0.7, 0.85):
        near = found = 0
        for first, second in pairs:
            a, b = shingles(normalise(first)), shingles(normalise(second))
            dedup = Deduplicator(threshold)
            dedup.keep(first)
            dropped = not dedup.keep(second)
            if len(a & b) / len(a | b) >= threshold:
                near += 1
                found += dropped
            else:
                assert not dropped, (first, second)
        assert near >= 40 and found / near >= 0.9, (threshold, near, found)


def test_many_records_stay_distinct() -> None:
    dedup = Deduplicator(0.85)
    kept = sum(dedup.keep(f"Question number {n} about lighthouse {n * 7919 % 1000}")
               for n in range(500))
    assert kept > 400


def test_signatures_are_datasketchs_minhash_of_the_same_shingle_hashes() -> None:
    # The server computes a signature over all shingles at once; it must be the MinHash
    # datasketch would give for the same hashes, so that its LSH bands mean what they say.
    import numpy as np
    from datasketch import MinHash

    from synthqa.contract import dedup

    for text in ("What did Fresnel invent?", "灯台は夜に光る", "𝔘nicode 𝔘p", "ab", ""):
        key = normalise(text)
        fresh = MinHash(num_perm=64, hashfunc=lambda data: int.from_bytes(data, "little"))
        fresh.update_batch([int(h).to_bytes(4, "little") for h in dedup.shingle_hashes(key)])
        assert np.array_equal(dedup._minhash(key).hashvalues, fresh.hashvalues), text


def test_a_texts_shingle_hashes_are_those_of_its_shingles_and_tell_them_apart() -> None:
    from synthqa.contract.dedup import shingle_hashes

    for text in ("what did fresnel invent in 1822", "灯台は 夜に光る", "abc", "abcd", ""):
        own = shingles(text)
        assert set(shingle_hashes(text).tolist()) == {
            int(shingle_hashes(shingle)[0]) for shingle in own}, text
    sample = " ".join(f"record {n} of lighthouse {n * 7919 % 1000}" for n in range(2000))
    assert len(set(shingle_hashes(sample).tolist())) == len(shingles(sample))


def test_asking_about_one_text_then_keeping_another_judges_each_on_its_own() -> None:
    dedup = Deduplicator(0.85)
    assert dedup.keep("Where did the Pharos of Alexandria stand?")
    assert not dedup.duplicate_of_kept("Who built the lighthouse at Eddystone?")
    assert not dedup.keep("where did the pharos of alexandria stand")
    assert dedup.keep("Who built the lighthouse at Eddystone?")
    assert dedup.duplicate_of_kept("Who built the lighthouse at Eddystone?")


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
