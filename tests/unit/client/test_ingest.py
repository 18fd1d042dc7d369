"""Ingestion (the ingest extra) on real files made by the tests: each format's text with its
source map, the boilerplate of a web page gone, any common encoding, .gz, and every bad file
named with its reason. `synthqa extract` on a nested folder."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from synthqa.client.cli import main
from synthqa.client.ingest import ExtractionError, extract_file
from synthqa.client.ingest.pool import extract_in_order
from synthqa.client.walk import collect_files

from ... import made_files


def test_a_pdf_gives_its_pages_text_mapped_page_by_page(tmp_path: Path) -> None:
    extracted, _ = extract_file(made_files.pdf(tmp_path / "pharos.pdf"))
    assert extracted.kind == "pdf"
    first, second = made_files.PDF_PAGES
    assert " ".join(extracted.text.split()) == " ".join(f"{first} {second}".split())
    assert [region.page for region in extracted.regions] == [1, 2]
    quake = extracted.text.index("earthquake")
    assert extracted.pages(quake, quake + 10) == [2]
    assert extracted.pages(0, len(extracted.text)) == [1, 2]


def test_a_pdf_counts_its_pages_those_without_text_too(tmp_path: Path) -> None:
    first, second = made_files.PDF_PAGES
    extracted, _ = extract_file(made_files.pdf(tmp_path / "gap.pdf", (first, "", second)))
    assert extracted.page_count == 3 and extracted.slide_count is None
    assert [region.page for region in extracted.regions] == [1, 3]


def test_a_web_page_keeps_its_article_and_drops_the_boilerplate(tmp_path: Path) -> None:
    extracted, _ = extract_file(made_files.html(tmp_path / "keepers.html"))
    assert "Lighthouse keepers trimmed the wicks" in extracted.text
    assert "Fog could last for days." in extracted.text
    for boilerplate in (*made_files.BOILERPLATE, "cookie-consent", "tracking"):
        assert boilerplate not in extracted.text
    fog = extracted.text.index("Fog could last")
    [region] = [r for r in extracted.regions if r.start <= fog < r.end]
    assert region.heading == ("The keeper's day", "Fog")


def test_a_word_file_keeps_headings_lists_and_tables(tmp_path: Path) -> None:
    extracted, _ = extract_file(made_files.docx(tmp_path / "oils.docx"))
    assert "# Lamp oils" in extracted.text and "## Costs" in extracted.text
    assert "- Whale oil, until about 1860" in extracted.text
    assert "| Oil | Cost per gallon |\n|---|---|\n| Kerosene | 8 cents |" in extracted.text
    table = extracted.text.index("| Kerosene")
    [region] = [r for r in extracted.regions if r.start <= table < r.end]
    assert region.heading == ("Lamp oils", "Costs")


def test_a_deck_gives_each_slides_text_and_notes_mapped_to_the_slide(tmp_path: Path) -> None:
    extracted, _ = extract_file(made_files.pptx(tmp_path / "lenses.pptx"))
    assert "Notes: Invented in 1822." in extracted.text
    notes = extracted.text.index("Invented")
    assert extracted.slides(notes, notes + 5) == [1]
    miles = extracted.text.index("20 miles")
    assert extracted.slides(miles, miles + 5) == [2]
    assert extracted.slide_count == 2 and extracted.page_count is None


@pytest.mark.parametrize(("make", "expected"), [
    (made_files.utf16_text, "Phare de Cordouan, été comme hiver."),
    (made_files.latin1_text, "Le phare de Cordouan brille été comme hiver, année après année."),
])
def test_text_in_any_common_encoding_is_decoded(tmp_path: Path, make, expected: str) -> None:  # noqa: ANN001
    extracted, _ = extract_file(make(tmp_path / "phare.txt"))
    assert extracted.text == expected


def test_markdown_and_its_gz_give_the_same_text_and_heading_paths(tmp_path: Path) -> None:
    plain, _ = extract_file(made_files.markdown(tmp_path / "keepers.md"))
    packed, _ = extract_file(made_files.gzipped(tmp_path / "keepers.md.gz",
                                                tmp_path / "keepers.md"))
    assert plain == packed
    duties = plain.text.index("They trimmed")
    [region] = [r for r in plain.regions if r.start <= duties < r.end]
    assert region.heading == ("Keepers", "Duties")


def bad_files(folder: Path) -> dict[str, str]:
    """File name → the words its refusal must hold."""
    made_files.pdf(folder / "locked.pdf", password="secret")
    made_files.scanned_pdf(folder / "scan.pdf")
    (folder / "blob.bin").write_bytes(b"\x00\x01\x02 not text \xff" * 10)
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (folder / "torn.txt.gz").write_bytes(gzip.compress(b"some text")[:-6])
    (folder / "empty.md").write_text("  \n", encoding="utf-8")
    return {"locked.pdf": "encrypted PDF", "scan.pdf": "no text layer; OCR is not supported",
            "blob.bin": "a binary file", "broken.docx": "zip archive",
            "torn.txt.gz": "gzip archive", "empty.md": "empty or only whitespace"}


def test_every_bad_file_is_refused_with_its_reason(tmp_path: Path) -> None:
    for name, words in bad_files(tmp_path).items():
        with pytest.raises(ExtractionError, match=words):
            extract_file(tmp_path / name)


def test_a_gzip_past_the_limit_is_refused(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("synthqa.client.ingest.extract.MAX_GZIP_BYTES", 1000)
    (tmp_path / "bomb.txt.gz").write_bytes(gzip.compress(b"a" * 5000))
    with pytest.raises(ExtractionError, match="unpacks past"):
        extract_file(tmp_path / "bomb.txt.gz")


def test_folders_are_walked_in_order_hidden_files_only_when_included(tmp_path: Path) -> None:
    for name in ("b.md", "a/z.txt", "a/b/c.pdf", ".hidden/x.md", "a/.secret.txt", "a/skip.log"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text", encoding="utf-8")
    found = [path.relative_to(tmp_path).as_posix() for path in collect_files([tmp_path])]
    assert found == ["b.md", "a/skip.log", "a/z.txt", "a/b/c.pdf"]
    chosen = collect_files([tmp_path], include=["*.md", "*.txt"], exclude=["a/z.*"])
    assert [path.relative_to(tmp_path).as_posix() for path in chosen] == ["b.md"]
    hidden = collect_files([tmp_path], include=[".hidden", "*.md", ".secret.txt"])
    assert sorted(path.name for path in hidden) == [".secret.txt", "b.md", "x.md"]


def test_extraction_in_worker_processes_keeps_the_order(tmp_path: Path) -> None:
    paths = []
    for n in range(7):
        paths.append(tmp_path / f"{n}.txt")
        paths[-1].write_text(f"Document number {n}.", encoding="utf-8")
    results = list(extract_in_order(paths, workers=2))
    assert [path for path, _ in results] == paths
    assert [result.extracted.text for _, result in results] == [  # type: ignore[union-attr]
        f"Document number {n}." for n in range(7)]


def test_extract_writes_each_documents_text_and_source_map_and_names_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "web").mkdir(parents=True)
    made_files.pdf(corpus / "pharos.pdf")
    made_files.html(corpus / "web" / "keepers.html")
    made_files.pptx(corpus / "lenses.pptx")
    refusals = bad_files(corpus)
    out = tmp_path / "docs.jsonl"
    assert main(["extract", str(corpus), "--out", str(out)]) == 3
    written = out.read_text(encoding="utf-8").split("\n")[:-1]
    lines = {line["document_id"]: line for line in map(json.loads, written)}
    assert sorted(lines) == ["lenses.pptx", "pharos.pdf", "web/keepers.html"]
    assert [place["page"] for place in lines["pharos.pdf"]["source_map"]] == [1, 2]
    assert {place["slide"] for place in lines["lenses.pptx"]["source_map"]} == {1, 2}
    assert len(lines["pharos.pdf"]["source"]["sha256"]) == 64
    assert lines["web/keepers.html"]["kind"] == "html"
    err = capsys.readouterr().err
    for name, words in refusals.items():
        assert name in err and words in err, err
    assert "extracted 3 of 9 file(s)" in err


def test_extraction_workers_end_with_a_process_killed_outright(tmp_path: Path) -> None:
    """A CLI killed with SIGKILL mid-run (as tests/e2e/test_replicas.py does) must leave no
    extraction worker behind."""
    import signal
    import subprocess
    import sys

    import psutil

    (tmp_path / "a.txt").write_text("Some text.", encoding="utf-8")
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from synthqa.client.ingest.pool import extract_in_order\n"
        "results = extract_in_order([Path(sys.argv[1])] * 3, workers=2)\n"
        "next(results)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "a.txt")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        workers = [child for child in psutil.Process(parent.pid).children(recursive=True)
                   if "resource_tracker" not in " ".join(child.cmdline())]
        assert workers, "the pool has worker processes"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers left behind: {alive}"
    finally:
        if parent.poll() is None:
            parent.kill()
