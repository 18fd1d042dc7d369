"""`synthqa report` on runs the tests write with the CLI's own line and manifest helpers: the
page's counts are the run's, every plot is there (or the sentence that says why not), record
text is escaped, and a run without a manifest, a custom-shape run and a run without the judge
all make a page. Last, a real generate (on a stand-in server) of a PDF with a blank page,
reported. tests/unit/client/test_report_browser.py opens the page in Chromium."""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthqa.client.cli import main
from synthqa.client.cli_generate import RunReport, run_generate
from synthqa.client.report import DATASET_HINT, ReportError, render, summary_lines, write_report
from synthqa.client.report_data import summarize
from synthqa.client.report_plots import PLOTS, Plot
from synthqa.v1 import synthqa_pb2 as pb

from ... import made_files
from . import report_runs
from .report_runs import HOSTILE, PLOT_NAMES, entry, line, manifest, write_run


def plots_in(page: str) -> dict[str, str]:
    """Each plot's element: the SVG of an <img>, or the text shown instead."""
    found = {}
    for tag, attributes, text in re.findall(
            r'<(img|p) ([^>]*data-plot="[^"]+"[^>]*)>([^<]*)', page):
        name = re.search(r'data-plot="([^"]+)"', attributes)[1]
        if tag == "img":
            data = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', attributes)[1]
            found[name] = base64.b64decode(data).decode("utf-8")
        else:
            found[name] = text
    return found


def count_in(page: str, key: str) -> str:
    return re.search(rf'data-count="{key}"><th>[^<]*</th><td class="number">([^<]*)</td>',
                     page)[1]


@pytest.fixture
def judged_run(tmp_path: Path) -> Path:
    return report_runs.judged_run(tmp_path)


def test_the_page_has_the_runs_counts_and_every_plot(judged_run: Path) -> None:
    out = judged_run.with_suffix(".html")
    summary = write_report(judged_run, out)
    page = out.read_text(encoding="utf-8")
    expected = {"records": "11", "documents": "2", "generated": "20", "invalid": "3",
                "judged_out": "4", "duplicates": "2", "kept": "11", "chunks_done": "7",
                "chunks_failed": "2", "cached_chunks": "1", "skipped": "1",
                "short_of_target": "2", "documents_sent": "4"}
    assert {key: count_in(page, key) for key in expected} == expected
    plots = plots_in(page)
    assert set(plots) == set(PLOT_NAMES) == {draw(summary).name for draw in PLOTS}
    assert all(svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
               for svg in plots.values()), "every plot of this run has data to draw"
    assert "tiny-model" in page and "Content-Security-Policy" in page
    # What gave nothing, and why.
    assert re.search(r"<td>locked.pdf</td><td>skipped: locked.pdf: an encrypted PDF", page)
    assert "<td>broken.txt</td><td>2 chunk(s) failed</td>" in page
    assert "<td>manuals/lamps.pdf</td><td>pages</td><td>7</td><td>5–7</td>" in page
    assert "<td>notes.txt</td><td>patience: passes in a row sent no new record</td>" \
           "<td>3 of 8 records</td>" in page
    # Nothing that would reach out when the page is opened.
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page.lower()


def test_the_summary_in_numbers(judged_run: Path) -> None:
    summary = summarize(judged_run)
    assert summary.record_outcomes() == {"kept": 11, "invalid": 3, "judged out": 4,
                                         "duplicates": 2}
    assert summary.failed_chunks() == {"the engine died": 2}
    assert [gap.empty() for gap in summary.page_gaps()] == [[5, 6, 7]]
    # Coverage: distinct sentences cited over the highest cited: {1, 3} is 2 of 3; {2} 1 of 2.
    assert sorted(summary.coverages()) == [0.5] + [pytest.approx(2 / 3)] * 4
    assert summary.lines.openings["what is thing"] == 11
    assert summary.lines.lengths["question (words)"] == [4] * 11


def test_a_document_id_with_a_colon_is_told_from_its_stop_reason(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.jsonl", [line("notes: draft.txt", 0, 0)])
    report = RunReport(pairs=1)
    report.short_of_target = ["notes: draft.txt: patience: passes in a row sent no new record "
                              "(1 of 5 records)"]
    manifest(run, [entry("notes: draft.txt")], report, {"target_records": 5})
    assert summarize(run).short_of_target() == [
        ("notes: draft.txt", "patience: passes in a row sent no new record", "1 of 5 records")]


def test_the_terminal_lines_are_counts_and_no_record_text(judged_run: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    assert main(["report", str(judged_run)]) == 0
    err = capsys.readouterr().err
    assert judged_run.with_suffix(".html").exists()
    assert "11 records from 2 document(s)" in err
    assert "11 kept, 3 invalid, 4 judged out, 2 duplicates; 2 chunk(s) failed" in err
    assert "pages or slides without records: 3 in 1 file(s)" in err
    assert "What is thing" not in err and "A thing" not in err


def test_record_text_and_document_ids_are_escaped(tmp_path: Path) -> None:
    sneaky_id = "<img src=x onerror=alert(1)>.txt"
    run = write_run(tmp_path / "run.jsonl", [
        line(sneaky_id, 0, 0, question=f"Why {HOSTILE}?", answer="Because </td></table>."),
        line("b.txt", 0, 0, "custom", term=HOSTILE)])
    report = RunReport(pairs=2)
    report.failures = [f"b.txt chunk 3: {HOSTILE}"]
    manifest(run, [entry(sneaky_id), entry("b.txt")], report, {"instructions": HOSTILE})
    write_report(run, tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in page
    assert "Because &lt;/td&gt;&lt;/table&gt;." in page


def test_a_run_without_a_manifest_says_what_is_unknown(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.jsonl", [line("a.txt", 0, n) for n in range(3)])
    write_report(run, tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert 'id="no-manifest"' in page and "run.jsonl.manifest.json was not found" in page
    assert count_in(page, "records") == "3" and count_in(page, "generated") == "unknown"
    plots = plots_in(page)
    assert set(plots) == set(PLOT_NAMES)
    for name in ("record-outcomes", "failed-chunks", "stop-reasons"):
        assert "no manifest" in plots[name]
    assert plots["records-per-document"].startswith("<svg")
    assert plots["records-per-page"].startswith("no PDF or PowerPoint file")


def test_a_manifest_that_is_not_one_is_named_and_left_aside(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.jsonl", [line("a.txt", 0, 0)])
    (tmp_path / "run.jsonl.manifest.json").write_text("{not json", encoding="utf-8")
    summary = summarize(run)
    assert summary.manifest is None and "is not JSON" in (summary.manifest_note or "")


def test_a_custom_shape_run_shows_its_records_lengths_and_no_questions(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.jsonl", [
        line("people.txt", 0, n, "custom", name=f"Keeper {n}", born=1800 + n)
        for n in range(4)])
    summary = write_report(run, tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert list(summary.lines.lengths) == ["record (characters of JSON)"]
    plots = plots_in(page)
    assert plots["lengths"].startswith("<svg")
    assert plots["question-openings"] == "no questions: custom records have none"
    assert "{&quot;name&quot;: &quot;Keeper 0&quot;, &quot;born&quot;: 1800}" in page


def test_judge_and_evidence_off_say_so_instead_of_empty_plots(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.jsonl", [line("a.txt", 0, n) for n in range(2)])
    manifest(run, [entry("a.txt")], RunReport(pairs=2, records_generated=2))
    write_report(run, tmp_path / "page.html")
    plots = plots_in((tmp_path / "page.html").read_text(encoding="utf-8"))
    assert plots["ratings"] == "judge off: no record has a rating"
    assert plots["evidence-coverage"].startswith("evidence off")
    assert plots["stop-reasons"].startswith("no --target-records")
    assert plots["failed-chunks"] == "no chunk failed (0 done)"


def test_a_summary_run_measures_its_summaries(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.jsonl", [
        line("a.txt", 0, 0, "summary", summary="The tower stood for centuries.")])
    summary = summarize(run)
    assert summary.lines.lengths == {"summary (words)": [5]}
    assert plots_of(summary)["question-openings"].note.startswith("no questions")


def plots_of(summary: Any) -> dict[str, Plot]:
    return {plot.name: plot for plot in (draw(summary) for draw in PLOTS)}


def test_many_documents_make_a_histogram_not_a_bar_each(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.jsonl",
                    [line(f"d{n:03}.txt", 0, r) for n in range(80) for r in range(n % 4 + 1)])
    plot = plots_of(summarize(run))["records-per-document"]
    assert plot.svg is not None and plot.note.startswith("80 documents, too many to name")


def test_the_command_refuses_what_is_not_a_run(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.jsonl"
    old.write_text('{"document_id": "a.txt", "pair_index": 0}\n', encoding="utf-8")
    assert main(["report", str(old), "--out", str(tmp_path / "x.html")]) == 1
    assert "schema version 1" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 1
    assert "missing.jsonl" in capsys.readouterr().err
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["report", str(binary)]) == 1
    assert "not UTF-8 text" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.html"))
    run = write_run(tmp_path / "run.jsonl", [line("a.txt", 0, 0)])
    assert main(["report", str(run), "--out", str(run)]) == 1
    assert "would overwrite the run" in capsys.readouterr().err
    assert run.read_text(encoding="utf-8").startswith('{"schema_version": 1')


@pytest.fixture
def without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As the client is installed without the dataset extra."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, "synthqa.client.report_plots", raising=False)
    monkeypatch.delattr("synthqa.client.report_plots", raising=False)
    yield


def test_without_the_dataset_extra_the_command_names_it(
    without_matplotlib: None, judged_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ReportError, match=re.escape("pip install 'synthqa-client[dataset]'")):
        write_report(judged_run, judged_run.with_suffix(".html"))
    assert main(["report", str(judged_run)]) == 1
    assert DATASET_HINT in capsys.readouterr().err


def test_a_plot_without_data_is_a_sentence_in_its_place(judged_run: Path) -> None:
    page = render(summarize(judged_run), [Plot("ratings", "Ratings", note="judge off")])
    assert '<p class="no-plot" id="plot-ratings" data-plot="ratings">judge off</p>' in page
    assert summary_lines(summarize(judged_run))[0].startswith("report of 11 records")


class OnePairAPage:
    """A stand-in server: a chunk per page of text it is sent, and a pair from each, so a
    generate run writes real lines and a real manifest."""

    def server_info(self) -> pb.GetServerInfoResponse:
        return pb.GetServerInfoResponse(model="stand-in")

    def generate(self, documents: Any, **options: Any) -> Iterator[pb.GenerateResponse]:
        for document in documents:
            # The made PDF's pages are separated by a blank line: one chunk each.
            spans, start = [], 0
            for text in document.text.split("\n\n"):
                spans.append((start, start + len(text)))
                start += len(text) + 2
            for index, (char_start, char_end) in enumerate(spans):
                yield pb.GenerateResponse(chunk_started=pb.ChunkStarted(
                    document_id=document.document_id, chunk_index=index,
                    chunk_count=len(spans), char_start=char_start, char_end=char_end))
                yield pb.GenerateResponse(qa_pair=pb.QaPair(
                    document_id=document.document_id, chunk_index=index,
                    question="Which page?", answer="This one."))
                yield pb.GenerateResponse(chunk_completed=pb.ChunkCompleted(
                    document_id=document.document_id, chunk_index=index))
            yield pb.GenerateResponse(document_completed=pb.DocumentCompleted(
                document_id=document.document_id, pair_count=len(spans),
                record_counts=pb.RecordCounts(generated=len(spans))))


def test_a_generated_run_of_a_pdf_with_a_blank_page_names_the_page(tmp_path: Path) -> None:
    first, second = made_files.PDF_PAGES
    pdf = made_files.pdf(tmp_path / "gap.pdf", (first, "", second))
    out = tmp_path / "run.jsonl"
    code = run_generate(OnePairAPage(), [pdf], out, {}, show=0,  # type: ignore[arg-type]
                        progress_enabled=False, strict=False)
    assert code == 0
    inputs = json.loads((tmp_path / "run.jsonl.manifest.json").read_text())["inputs"]
    assert inputs[0]["pages"] == 3 and inputs[0]["slides"] is None
    summary = write_report(out, tmp_path / "run.html")
    assert [(gap.document_id, gap.total, gap.empty()) for gap in summary.page_gaps()] == \
        [("gap.pdf", 3, [2])]
    page = (tmp_path / "run.html").read_text(encoding="utf-8")
    assert "<td>gap.pdf</td><td>pages</td><td>3</td><td>2</td>" in page
    assert count_in(page, "records") == "2" and count_in(page, "generated") == "2"
