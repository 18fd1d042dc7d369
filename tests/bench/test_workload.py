"""The benchmark's workloads: the same on every build, and rebuilt identically from their
options (as the inprocess arm rebuilds them in its own process)."""

from __future__ import annotations

import sys

import pytest

from ..paths import REPO

sys.path.insert(0, str(REPO / "bench"))

from synthqa_bench.workload import MIXED_PROFILES, build_workload  # noqa: E402


@pytest.mark.parametrize("name", ["smoke", "quick", "full", "straggle"])
def test_a_workload_rebuilt_from_its_options_is_the_same(name: str) -> None:
    workload = build_workload(name)
    rebuilt = build_workload(name, workload.options)
    assert rebuilt == workload
    # An option named seed is the sampling seed of the requests, not of the documents.
    assert build_workload(name, {"seed": 99}).documents == workload.documents


def test_the_straggle_workload_mixes_lengths_and_pair_counts() -> None:
    workload = build_workload("straggle")
    lengths = sorted(len(document.text) for document in workload.documents)
    assert lengths[0] < 1_000 and lengths[-1] > 3_500
    groups = workload.option_groups()
    assert sorted(options["num_pairs"] for options, _ in groups) == sorted(
        profile["num_pairs"] for profile in MIXED_PROFILES)
    assert sum(len(documents) for _, documents in groups) == len(workload.documents)
