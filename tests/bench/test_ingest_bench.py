"""`make bench-ingest`'s logic, without timing anything: its corpus is the same for the same
seed and every file in it is read (by synthqa and by the bare library call), the figures are
the arithmetic they claim, and the pre-extracted arm sends the very text of the other."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from synthqa.client.ingest import extract_file

from ..paths import REPO

sys.path.insert(0, str(REPO / "bench"))

from synthqa_bench.ingest_bench import (  # noqa: E402
    RAW,
    rates,
    ratio,
    reader,
    summarize_runs,
    text_folder,
)
from synthqa_bench.ingest_corpus import FORMATS, SMALL, build_corpus, spread  # noqa: E402

KINDS = {"pdf": "pdf", "html": "html", "docx": "docx", "pptx": "pptx", "markdown": "markdown",
         "utf16": "text", "cp1252": "text", "gz": "text"}


def test_documents_are_spread_over_the_formats_evenly() -> None:
    assert spread(16) == {name: 2 for name in FORMATS}
    counts = spread(19)
    assert sum(counts.values()) == 19
    assert list(counts.values()) == [3, 3, 3, 2, 2, 2, 2, 2]


def test_the_corpus_is_the_same_for_the_same_seed_and_every_file_reads(tmp_path: Path) -> None:
    counts = {name: 1 for name in FORMATS}
    first = build_corpus(tmp_path / "a", counts, SMALL, seed=3, shuffle=True)
    again = build_corpus(tmp_path / "b", counts, SMALL, seed=3, shuffle=True)
    assert [f.format for f in first] == [f.format for f in again]
    assert sorted(f.format for f in first) == sorted(FORMATS)
    for made, remade in zip(first, again, strict=True):
        extracted, _ = extract_file(made.path)
        assert extracted.text == extract_file(remade.path)[0].text
        assert extracted.kind == KINDS[made.format]
        if made.format in ("pdf", "pptx"):
            places = {region.page or region.slide for region in extracted.regions}
            assert places == set(range(1, made.units + 1))
        else:
            assert made.units == 1
        assert RAW[made.format](made.path.read_bytes()) > 0
        assert reader("raw", made.format)(made.path) > 0
    [cp1252] = [f for f in first if f.format == "cp1252"]
    with pytest.raises(UnicodeDecodeError):  # so charset-normalizer has to find the encoding
        cp1252.path.read_bytes().decode("utf-8")


def test_rates_are_amounts_over_seconds_and_the_ratio_of_medians() -> None:
    samples = [{"cpu": 2.0, "wall": 4.0}, {"cpu": 1.0, "wall": 2.0}, {"cpu": 4.0, "wall": 8.0}]
    figures = rates(samples, units=8, megabytes=2)
    assert figures["units_per_cpu_s"] == {"median": 4.0, "min": 2.0, "max": 8.0}
    assert figures["mb_per_wall_s"]["median"] == 0.5
    slower = rates([{"cpu": 4.0, "wall": 8.0}], units=8, megabytes=2)
    assert ratio(slower, figures, "units_per_cpu_s") == 0.5


def test_an_arm_s_runs_are_summarized_with_and_without_the_start_up() -> None:
    runs = [{"documents": 100, "chunks": 150, "records": 140, "wall": wall, "cpu": 3.0,
             "documents_per_s": 100 / wall, "chunks_per_s": 150 / wall,
             "records_per_s": 140 / wall} for wall in (10.0, 20.0, 12.0)]
    figures = summarize_runs(runs, start_up=2.0)
    assert figures["wall"] == {"median": 12.0, "min": 10.0, "max": 20.0}
    assert figures["documents_per_s"]["median"] == pytest.approx(100 / 12)
    assert figures["documents_per_s_net"]["median"] == pytest.approx(100 / 10)
    # A start-up that is a large part of each run is not taken out: the rest would be noise.
    assert "documents_per_s_net" not in summarize_runs(runs, start_up=5.0)


def test_the_text_folder_holds_each_document_s_text_as_extracted(tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    lines = [{"document_id": "doc-0000.pdf", "text": "Page one.\n\nPage two."},
             {"document_id": "reports/doc-0001.html", "text": "# Title\n\nÉté, “fog”."}]
    docs.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert text_folder(docs, tmp_path / "text") == 2
    for line in lines:
        path = tmp_path / "text" / (line["document_id"] + ".txt")
        assert extract_file(path)[0].text == line["text"]
    # Text that would not read back the same (generate strips a file's edges) is refused.
    docs.write_text(json.dumps({"document_id": "x", "text": "  padded"}) + "\n",
                    encoding="utf-8")
    with pytest.raises(RuntimeError, match="does not read back"):
        text_folder(docs, tmp_path / "refused")
