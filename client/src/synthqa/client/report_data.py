"""What `synthqa report` shows, counted from a run's output lines (record_lines.py) and its
manifest (run_manifest.py), with nothing drawn: report_plots.py draws it, report.py lays out
the page. One pass over the lines keeps counts, lengths and a few samples, not the records, so
a large run fits in memory."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .export import ExportError, read_lines
from .record_lines import BUILT_IN_SHAPES, TYPED_FIELDS
from .run_manifest import MANIFEST_VERSION, manifest_path

SAMPLES_PER_DOCUMENT = 3
# A sample's text past this many characters is cut: the table shows records, not documents.
SAMPLE_CHARS = 500
OPENING_WORDS = 3
# The fields whose lengths are shown, in words, per built-in shape; a custom record has no
# text fields, so its JSON's length is shown, in characters.
LENGTH_FIELDS = {"qa": ("question", "answer"), "cot": ("question", "reasoning", "answer"),
                 "summary": ("summary",)}
CUSTOM_LENGTH = "record (characters of JSON)"
_OPENING_PUNCTUATION = string.punctuation + "¿¡«»“”‘’"
# A failure of this run's chunk, and one carried over by --resume (cli_generate.py's words).
_FAILED_CHUNK = re.compile(r"(?P<document>.+?) chunk (?P<chunk>\d+): (?P<reason>.*)", re.S)
_FAILED_BEFORE = re.compile(r"(?P<document>.+): (?P<count>\d+) chunk\(s\) failed in the "
                            r"resumed run")
FAILED_BEFORE = "failed in the run --resume finished"
# A document short of its target, after its id: "<reason> (N of M records)".
_SHORT = re.compile(r"(?P<reason>.+) \((?P<records>\d+ of \d+ records)\)", re.S)


class ReportError(Exception):
    """The report cannot be made: not a run, unreadable, or the dataset extra is missing."""


@dataclass(frozen=True)
class Sample:
    """A record as the report's table shows it: each field's text (user data, escaped when
    written into the page), cut at SAMPLE_CHARS."""

    chunk_index: int
    fields: tuple[tuple[str, str], ...]
    rating: int | None


@dataclass
class DocumentTally:
    records: int = 0
    # Records per page (or slide) of the file; a record counts on every page its chunk spans.
    pages: Counter[int] = field(default_factory=Counter)
    slides: Counter[int] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)

    def add(self, line: Mapping[str, Any]) -> None:
        self.records += 1
        self.pages.update(line["source"]["pages"] or ())
        self.slides.update(line["source"]["slides"] or ())
        if len(self.samples) < SAMPLES_PER_DOCUMENT:
            self.samples.append(Sample(line["chunk_index"], _shown_fields(line), line["rating"]))


@dataclass
class LineTally:
    """Everything the report needs from the lines, added one line at a time."""

    records: int = 0
    shapes: Counter[str] = field(default_factory=Counter)
    documents: dict[str, DocumentTally] = field(default_factory=dict)
    ratings: Counter[int] = field(default_factory=Counter)
    lengths: dict[str, list[int]] = field(default_factory=dict)
    questions: int = 0
    openings: Counter[str] = field(default_factory=Counter)
    with_evidence: int = 0
    # The sentence numbers cited in each (document, chunk), over all its records and passes.
    cited: dict[tuple[str, int], set[int]] = field(default_factory=dict)

    def add(self, line: Mapping[str, Any]) -> None:
        self.records += 1
        self.shapes[line["shape"]] += 1
        self.documents.setdefault(line["document_id"], DocumentTally()).add(line)
        if line["rating"] is not None:
            self.ratings[line["rating"]] += 1
        for label, length in _lengths(line):
            self.lengths.setdefault(label, []).append(length)
        if isinstance(line["question"], str):
            self.questions += 1
            self.openings[opening(line["question"])] += 1
        if line["evidence"]:
            self.with_evidence += 1
            key = (line["document_id"], line["chunk_index"])
            self.cited.setdefault(key, set()).update(span["sentence"]
                                                     for span in line["evidence"])


def _shown_fields(line: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    if line["shape"] in BUILT_IN_SHAPES:
        shown = [(name, line[name]) for name in TYPED_FIELDS if isinstance(line[name], str)]
    else:
        shown = [("record", json.dumps(line["record"], ensure_ascii=False))]
    return tuple((name, _cut(text)) for name, text in shown)


def _cut(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS - 1] + "…"


def _lengths(line: Mapping[str, Any]) -> list[tuple[str, int]]:
    if line["shape"] not in LENGTH_FIELDS:
        return [(CUSTOM_LENGTH, len(json.dumps(line["record"], ensure_ascii=False)))]
    return [(f"{name} (words)", len(line[name].split()))
            for name in LENGTH_FIELDS[line["shape"]] if isinstance(line[name], str)]


def opening(question: str) -> str:
    """A question's first words, lowercased and without punctuation: "What is the"."""
    words = (word.strip(_OPENING_PUNCTUATION) for word in question.lower().split())
    return " ".join([word for word in words if word][:OPENING_WORDS])


@dataclass(frozen=True)
class PageGaps:
    """A paged file's records per page (or slide), and the pages that gave none."""

    document_id: str
    unit: str  # "page" or "slide"
    # The file's page count from the manifest; without it, the highest page a record spans
    # (then pages after it that gave nothing cannot be told).
    total: int
    counted: bool
    records: Mapping[int, int]

    def empty(self) -> list[int]:
        return [page for page in range(1, self.total + 1) if not self.records.get(page)]


@dataclass
class ReportSummary:
    """A run's lines, tallied, and its manifest when one was found beside it."""

    run: Path
    lines: LineTally
    manifest: dict[str, Any] | None
    # Why there is no manifest ("not found", "not JSON", ...), when there is none.
    manifest_note: str | None = None

    @property
    def counts(self) -> dict[str, Any] | None:
        return self.manifest.get("counts") if self.manifest else None

    @property
    def inputs(self) -> list[dict[str, Any]] | None:
        return self.manifest.get("inputs") if self.manifest else None

    def option(self, name: str) -> Any:
        """An option as the run used it: given, else the server's default (None: unknown)."""
        if not self.manifest:
            return None
        given = self.manifest.get("options") or {}
        if name in given:
            return given[name]
        return ((self.manifest.get("server") or {}).get("defaults") or {}).get(name)

    def record_outcomes(self) -> dict[str, int] | None:
        """What became of the records the model wrote, from the server's counts."""
        if self.counts is None:
            return None
        records = self.counts.get("records") or {}
        return {"kept": records.get("kept", 0), "invalid": records.get("invalid", 0),
                "judged out": records.get("judged_out", 0),
                "duplicates": records.get("duplicates", 0)}

    def failed_chunks(self) -> Counter[str] | None:
        """Failed chunks by reason (the server's error message)."""
        if self.counts is None:
            return None
        reasons: Counter[str] = Counter()
        for failure in self.counts.get("failures") or ():
            if before := _FAILED_BEFORE.fullmatch(failure):
                reasons[FAILED_BEFORE] += int(before["count"])
            elif chunk := _FAILED_CHUNK.fullmatch(failure):
                reasons[chunk["reason"].strip() or "(no message)"] += 1
            else:
                reasons[failure] += 1
        return reasons

    def short_of_target(self) -> list[tuple[str, str, str]] | None:
        """(document, stop reason, "N of M records") per document short of its target."""
        if self.counts is None:
            return None
        documents = {entry["document_id"] for entry in self.inputs or ()}
        shorts = []
        for text in self.counts.get("short_of_target") or ():
            document, rest = _split_document(text, documents)
            match = _SHORT.fullmatch(rest)
            shorts.append((document, match["reason"], match["records"]) if match
                          else (document, rest, ""))
        return shorts

    def documents_without_records(self) -> list[tuple[str, str]] | None:
        """(document, why) per input that gave no record; None without the manifest's
        inputs."""
        if self.inputs is None:
            return None
        failures = (self.counts or {}).get("failures") or ()
        failed = Counter(match["document"] for failure in failures
                         if (match := _FAILED_CHUNK.fullmatch(failure)))
        shorts = {document: reason for document, reason, _ in self.short_of_target() or ()}
        empty = []
        for entry in self.inputs:
            document = entry["document_id"]
            if document in self.lines.documents:
                continue
            if entry.get("skipped"):
                why = f"skipped: {entry['skipped']}"
            elif failed[document]:
                why = f"{failed[document]} chunk(s) failed"
            else:
                why = shorts.get(document, "no record kept")
            empty.append((document, why))
        return empty

    def page_gaps(self) -> list[PageGaps]:
        """Every paged file's records per page: the manifest's inputs first (a file that gave
        no record at all included), then documents only the lines name."""
        extents = {entry["document_id"]: entry for entry in self.inputs or ()
                   if not entry.get("skipped")}
        order = list(extents) + [document for document in self.lines.documents
                                 if document not in extents]
        gaps = []
        for document in order:
            tally = self.lines.documents.get(document, DocumentTally())
            entry = extents.get(document, {})
            for unit, counted, records in (("page", entry.get("pages"), tally.pages),
                                           ("slide", entry.get("slides"), tally.slides)):
                if counted or records:
                    gaps.append(PageGaps(document, unit, counted or max(records),
                                         bool(counted), records))
        return gaps

    def coverages(self) -> list[float]:
        """Per (document, chunk) with cited sentences: the distinct sentences cited over the
        highest sentence number cited. The chunk's sentence count is not in the lines, and
        the highest number cited is its lower bound, so this is an upper bound of the share
        of the chunk's sentences that some record rests on (docs/clients.md, "Report")."""
        return [min(1.0, len(cited) / max(cited)) for cited in self.lines.cited.values()
                if cited and max(cited) > 0]

    def judged(self) -> bool:
        return bool(self.lines.ratings) or bool(self.option("judge"))

    def evidence_asked(self) -> bool:
        return bool(self.lines.with_evidence) or bool(self.option("evidence"))


def _split_document(text: str, documents: set[str]) -> tuple[str, str]:
    """"<document id>: <rest>", split after the id: at the ": " that ends a known id (an id
    may hold ": " itself, and so do the reasons), else at the first."""
    start = 0
    while (at := text.find(": ", start)) != -1:
        if text[:at] in documents:
            return text[:at], text[at + 2:]
        start = at + 1
    document, _, rest = text.partition(": ")
    return document, rest


def read_manifest(run: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The run's manifest, or None and why not."""
    path = manifest_path(run)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"no manifest: {path.name} was not found beside the run"
    except (OSError, UnicodeDecodeError) as error:
        return None, f"{path.name} could not be read ({error})"
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"{path.name} is not JSON ({error.msg})"
    if not isinstance(manifest, dict) or manifest.get("manifest_version") != MANIFEST_VERSION:
        return None, f"{path.name} is not a synthqa run manifest of version {MANIFEST_VERSION}"
    return manifest, None


def tally(lines: Iterable[Mapping[str, Any]], run: Path) -> LineTally:
    counted = LineTally()
    try:
        for line in lines:
            counted.add(line)
    except ExportError as error:
        raise ReportError(str(error)) from None
    except UnicodeDecodeError:
        raise ReportError(f"{run} is not UTF-8 text: not the output of synthqa generate") \
            from None
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        # add() counts the line first: the count is the failing record's number.
        raise ReportError(f"{run}: record {counted.records} lacks what a record line has "
                          f"({type(error).__name__}: {error})") from None
    return counted


def summarize(run: Path) -> ReportSummary:
    """Reads the run's lines and its manifest; ReportError when the file is not a run."""
    try:
        lines = tally(read_lines(run), run)
    except OSError as error:
        raise ReportError(f"{run}: {error.strerror or error}") from None
    manifest, note = read_manifest(run)
    return ReportSummary(run, lines, manifest, note)
