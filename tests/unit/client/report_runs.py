"""Runs for the report's tests, written with the CLI's own helpers: record_lines for the
lines, run_manifest and cli_generate's RunReport for the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthqa.client.cli_generate import RunReport
from synthqa.client.record_lines import Place, RunShape, Source, record_line
from synthqa.client.run_manifest import write_manifest
from synthqa.v1 import synthqa_pb2 as pb

PLOT_NAMES = ("records-per-document", "records-per-page", "record-outcomes", "failed-chunks",
              "stop-reasons", "ratings", "lengths", "evidence-coverage", "question-openings")
HOSTILE = "<script>alert('owned')</script>"


class Pages:
    """A source map of 100 characters a page (ingest.Extracted's two methods)."""

    def pages(self, start: int, end: int) -> list[int]:
        return list(range(start // 100 + 1, (end - 1) // 100 + 2))

    def slides(self, start: int, end: int) -> list[int]:
        return []


def line(document_id: str, chunk: int, index: int, shape: str = "qa", *, rating: int = 0,
         cited: tuple[int, ...] = (), paged: bool = False, **record: Any) -> dict[str, Any]:
    record = record or {"question": f"What is thing {index}?", "answer": "A thing."}
    evidence = [pb.EvidenceSpan(sentence=n, char_start=n * 10, char_end=n * 10 + 9)
                for n in cited]
    return record_line(
        pb.Record(document_id=document_id, chunk_index=chunk, record_index=index,
                  json=json.dumps(record), rating=rating, rating_reason="fine" if rating else "",
                  evidence=evidence),
        Source(document_id, "0" * 64), RunShape(shape, judged=bool(rating)), "x" * 400,
        Place(Pages() if paged else None, chunk * 100, chunk * 100 + 90))


def write_run(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(one) + "\n" for one in lines), encoding="utf-8")
    return path


def manifest(run: Path, inputs: list[dict[str, Any]], report: RunReport,
             options: dict[str, Any] | None = None) -> None:
    write_manifest(run, started="2026-12-06T10:00:00+00:00", options=options or {},
                   server=pb.GetServerInfoResponse(model="tiny-model", version="0.1.0"),
                   inputs=inputs, counts=report.as_json(len(inputs), run))


def entry(document_id: str, pages: int | None = None, skipped: str | None = None
          ) -> dict[str, Any]:
    return {"document_id": document_id, "sha256": None if skipped else "0" * 64,
            "kind": "pdf" if pages else "text", "skipped": skipped, "pages": pages,
            "slides": None}


def judged_run(folder: Path) -> Path:
    """A judged qa run with evidence: a PDF of 7 pages whose chunks 0 to 3 (pages 1 to 4)
    gave records, a text file, a skipped file, a file whose chunks failed, two documents
    short of target."""
    lines = [line("manuals/lamps.pdf", chunk, index, rating=5 + chunk, cited=(1, 3),
                  paged=True) for chunk in range(4) for index in range(2)]
    lines += [line("notes.txt", 0, index, rating=9, cited=(2,)) for index in range(3)]
    run = write_run(folder / "run.jsonl", lines)
    report = RunReport(pairs=11, chunks_done=7, chunks_failed=2, documents_done=3,
                       records_generated=20, records_invalid=3, records_judged_out=4,
                       records_duplicates=2, cached_chunks=1)
    report.failures = ["broken.txt chunk 0: the engine died", "broken.txt chunk 1: the "
                       "engine died"]
    report.skipped = ["locked.pdf: an encrypted PDF (it needs a password)"]
    report.short_of_target = [
        "notes.txt: patience: passes in a row sent no new record (3 of 8 records)",
        "broken.txt: the most passes were done (max_passes) (0 of 8 records)"]
    manifest(run, [entry("manuals/lamps.pdf", 7), entry("notes.txt"), entry("broken.txt"),
                   entry("locked.pdf", skipped=report.skipped[0])], report,
             {"judge": True, "evidence": True, "target_records": 8})
    return run
