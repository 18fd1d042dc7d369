"""Curation through the real server and engine: the judge rates every record on the same
engine and only records at or above min_rating are sent; duplicates within a call are removed;
every record is accounted for in document_completed."""

from __future__ import annotations

import json

import grpc
import pytest

from synthqa.client import Document, SynthQAClient, SynthQAError
from synthqa.v1 import synthqa_pb2 as pb

from .helpers import SAMPLE, by_document


def assert_accounted(done: pb.DocumentCompleted) -> None:
    counts = done.record_counts
    assert done.pair_count == (counts.generated - counts.invalid - counts.dropped_by_judge
                               - counts.duplicates), done


def judged(client: SynthQAClient, min_rating: int) -> tuple[list[int], int]:
    """The ratings of the records sent, and how many the judge dropped."""
    documents = [Document(f"d{n}", SAMPLE[n * 1500:(n + 1) * 1500]) for n in range(3)]
    events = list(client.generate(documents, judge=True, min_rating=min_rating, num_pairs=3,
                                  max_generation_tokens=300, max_chunk_tokens=300,
                                  chunk_overlap_tokens=0, seed=4))
    ratings, dropped = [], 0
    for document in by_document(events).values():
        assert len(document.done) == 1 and not document.pairs
        done = document.done[0]
        assert_accounted(done)
        assert len(document.records) == done.pair_count
        for record in document.records:
            assert json.loads(record.json)["question"] == record.qa_pair.question
            ratings.append(record.rating)
        dropped += done.record_counts.dropped_by_judge
    return ratings, dropped


def test_the_judge_keeps_only_records_rated_at_or_above_min_rating(
    client: SynthQAClient,
) -> None:
    ratings, dropped = judged(client, min_rating=1)
    assert len(ratings) >= 9 and all(1 <= rating <= 10 for rating in ratings)
    # The judge is greedy and the call seeded: the same records get the same ratings, so a
    # threshold above the best of them drops records (the tiny model rates alike).
    threshold = min(10, max(ratings) + 1)
    kept, dropped = judged(client, min_rating=threshold)
    assert all(rating >= threshold for rating in kept)
    assert dropped > 0


def test_the_judge_prompt_can_be_replaced(client: SynthQAClient) -> None:
    events = list(client.generate_document(
        SAMPLE[:800], judge=True, min_rating=1, num_pairs=2, max_generation_tokens=200, seed=4,
        judge_instructions="Rate 10 if the answer names a year, else 1."))
    document = by_document(events)["document"]
    # At min_rating 1 every rated record is kept, each with the judge's rating and reason.
    assert document.records and all(1 <= r.rating <= 10 for r in document.records)
    assert_accounted(document.done[0])


def test_duplicates_within_a_call_are_removed_and_counted(client: SynthQAClient) -> None:
    # Four records per chunk from two choices, over several chunks: duplicates for certain.
    # The second and third choices are one text once normalised; the fourth is a near copy.
    choices = ["The lamp is lit.", "Ships sail at night!", "ships sail at night",
               "Ships sail at night."]
    documents = [Document(f"d{n}", SAMPLE[n * 900:(n + 1) * 900]) for n in range(3)]
    options = dict(record_choices=choices, num_pairs=4, max_generation_tokens=120,
                   max_chunk_tokens=200, chunk_overlap_tokens=0, seed=9)
    events = list(client.generate(documents, dedup=True, dedup_threshold=0.8, **options))
    grouped = by_document(events)
    sent = [json.loads(r.json) for d in grouped.values() for r in d.records]
    duplicates = sum(d.done[0].record_counts.duplicates for d in grouped.values())
    for document in grouped.values():
        assert_accounted(document.done[0])
    assert len(sent) == len({s.lower().strip(".!") for s in sent}) <= 2
    assert duplicates >= 12 - len(sent)
    # Without dedup every record is sent.
    plain = by_document(client.generate(documents, **options))
    assert sum(len(d.records) for d in plain.values()) == sum(
        d.done[0].record_counts.generated - d.done[0].record_counts.invalid
        for d in plain.values())


@pytest.mark.parametrize("options,field", [
    ({"min_rating": 0}, "options.min_rating"),
    ({"min_rating": 11}, "options.min_rating"),
    ({"dedup_threshold": 0.0}, "options.dedup_threshold"),
    ({"dedup_threshold": 1.5}, "options.dedup_threshold"),
    ({"judge_instructions": "x" * 4001}, "options.judge_instructions"),
    ({"target_records": -1}, "options.target_records"),
    ({"patience": 0}, "options.patience"),
    ({"max_invalid_fraction": 1.5}, "options.max_invalid_fraction"),
])
def test_curation_options_are_bounded(client: SynthQAClient, options: dict[str, object],
                                      field: str) -> None:
    with pytest.raises(SynthQAError) as raised:
        list(client.generate_document("A lamp on a rock.", **options))  # type: ignore[arg-type]
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in {v.field for v in raised.value.field_violations}


def one_document(client: SynthQAClient, **options: object) -> tuple[pb.DocumentCompleted,
                                                                    list[pb.Record]]:
    events = list(client.generate_document(SAMPLE[:600], max_generation_tokens=200, seed=8,
                                           **options))  # type: ignore[arg-type]
    document = by_document(events)["document"]
    assert len(document.done) == 1
    assert_accounted(document.done[0])
    return document.done[0], document.records


def test_a_document_gets_passes_until_its_target_is_met(client: SynthQAClient) -> None:
    done, records = one_document(client, record_shape="qa", num_pairs=2, target_records=7)
    assert done.stop_reason == pb.STOP_REASON_TARGET_MET
    assert done.pair_count == len(records) >= 7
    assert done.pass_count >= 4
    assert {r.pass_index for r in records} == set(range(done.pass_count))
    # Each pass samples anew and numbers its records on: no index twice.
    assert len({(r.chunk_index, r.record_index) for r in records}) == len(records)
    plain, _ = one_document(client, record_shape="qa", num_pairs=2)
    assert (plain.stop_reason, plain.pass_count) == (pb.STOP_REASON_COMPLETE, 1)


def test_passes_that_bring_nothing_new_stop_a_document_short(client: SynthQAClient) -> None:
    done, records = one_document(client, record_choices=["yes", "no"], num_pairs=2,
                                 dedup=True, target_records=5, patience=2)
    assert done.stop_reason == pb.STOP_REASON_PATIENCE
    assert len(records) == done.pair_count <= 2 < 5
    assert done.record_counts.duplicates >= 4


def test_too_many_invalid_records_stop_a_document_short(client: SynthQAClient) -> None:
    # A regex no character can match: whatever the grammar lets through breaks it.
    done, records = one_document(client, record_regex="[^\\x00-\\U0010FFFF]", num_pairs=1,
                                 target_records=3, max_invalid_fraction=0.5)
    assert done.stop_reason == pb.STOP_REASON_INVALID_FRACTION
    assert not records and done.pass_count == 1
    assert done.record_counts.invalid == done.record_counts.generated >= 1
