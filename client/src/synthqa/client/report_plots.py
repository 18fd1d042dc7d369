"""The report's plots, drawn with matplotlib as SVG. A bare Figure saved to SVG needs no pyplot
state and no GUI backend; text is drawn as paths, so a plot looks the same on any machine,
whatever fonts it has, and mathtext is off, so a `$` in a file name is a dollar sign. Each
plot is a Plot: its SVG, or the sentence the page shows instead when there is nothing to draw
(an empty axes says less than "judge off")."""

from __future__ import annotations

import io
import statistics
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
import numpy
from matplotlib.axis import Axis
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .report_data import PageGaps, ReportSummary

# Documents named a bar each; past this many, a histogram of records per document instead.
MAX_BARS = 30
# Paged documents in the records-per-page map; the page's table lists every one.
MAX_ROWS = 30
TOP_OPENINGS = 15
LABEL_CHARS = 48
BLUE, RED, LIGHT_RED = "#3b6ea8", "#c0504d", "#f2b8b5"
UNKNOWN = "unknown: the run has no manifest to say"


@dataclass(frozen=True)
class Plot:
    name: str  # the page's id for it: plot-<name>, and data-plot="<name>"
    title: str
    svg: str | None = None
    # Shown instead of the plot when there is nothing to draw, else beneath it.
    note: str = ""


@contextmanager
def _style(name: str) -> Iterator[None]:
    # The plot's name salts the SVG's ids: the same run gives the same bytes.
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": name,
                                "text.parse_math": False, "font.size": 9,
                                "axes.spines.top": False, "axes.spines.right": False}):
        yield


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # without the XML declaration and doctype


def _tail(text: str) -> str:
    """A file name keeps its end (the name itself), cut at the front."""
    text = " ".join(text.split())
    return text if len(text) <= LABEL_CHARS else "…" + text[-(LABEL_CHARS - 1):]


def _head(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _integers(axis: Axis) -> None:
    axis.set_major_locator(MaxNLocator(integer=True))


def _bars(name: str, title: str, labels: Sequence[str], values: Sequence[int], unit: str,
          note: str = "", colors: Sequence[str] | None = None) -> Plot:
    """Horizontal bars, the first on top, each with its value."""
    with _style(name):
        figure = Figure(figsize=(7.5, 0.9 + 0.28 * len(labels)))
        axes = figure.subplots()
        bars = axes.barh(range(len(labels)), values, color=colors or BLUE)
        axes.set_yticks(range(len(labels)), labels)
        axes.invert_yaxis()
        axes.bar_label(bars, padding=3)
        axes.set_xlabel(unit)
        _integers(axes.xaxis)
        return Plot(name, title, _svg(figure), note)


def _integer_bins(values: Sequence[float]) -> int | list[float]:
    """A bar per value when the values are few (lengths of 3, 4, 5 words), else 30 bins."""
    low, high = int(min(values)), int(max(values))
    return [value - 0.5 for value in range(low, high + 2)] if high - low <= 40 else 30


def _histogram(name: str, title: str, panels: Mapping[str, Sequence[float]], unit: str,
               note: str = "", bins: Sequence[float] | None = None) -> Plot:
    """One histogram per panel, side by side; integer values unless `bins` are given."""
    with _style(name):
        figure = Figure(figsize=(max(4.0, 3.2 * len(panels)), 2.8), layout="constrained")
        for axes, (label, values) in zip(figure.subplots(1, len(panels), squeeze=False)[0],
                                         panels.items(), strict=True):
            axes.hist(values, bins=_integer_bins(values) if bins is None else bins,
                      color=BLUE, edgecolor="white")
            if bins is None:
                _integers(axes.xaxis)
            axes.set_title(label)
            axes.set_xlabel(unit)
            axes.set_ylabel("count")
            _integers(axes.yaxis)
        return Plot(name, title, _svg(figure), note)


def records_per_document(summary: ReportSummary) -> Plot:
    name, title = "records-per-document", "Records per document"
    counts = {entry["document_id"]: 0 for entry in summary.inputs or ()}
    counts.update({document: tally.records for document, tally in
                   summary.lines.documents.items()})
    if not counts:
        return Plot(name, title, note="no documents: the run has no records and no manifest")
    empty = sum(1 for records in counts.values() if not records)
    note = f"{empty} of {len(counts)} documents gave no record" if empty else ""
    if len(counts) > MAX_BARS:
        return _histogram(name, title, {"documents by their records": list(counts.values())},
                          "records", f"{len(counts)} documents, too many to name one by one; "
                          + (note or "every document gave records"))
    return _bars(name, title, [_tail(document) for document in counts], list(counts.values()),
                 "records", note + (" (red)" if note else ""),
                 [BLUE if records else RED for records in counts.values()])


def records_per_page(summary: ReportSummary) -> Plot:
    name, title = "records-per-page", "Records per page or slide"
    gaps = summary.page_gaps()
    if not gaps:
        return Plot(name, title, note="no PDF or PowerPoint file gave pages or slides in this "
                    "run: nothing to count per page")
    shown = gaps[:MAX_ROWS]
    grid = numpy.full((len(shown), max(gap.total for gap in shown)), numpy.nan)
    for row, gap in enumerate(shown):
        for page in range(1, gap.total + 1):
            grid[row, page - 1] = gap.records.get(page, 0)
    with _style(name):
        figure = Figure(figsize=(8.0, 1.2 + 0.3 * len(shown)), layout="constrained")
        axes = figure.subplots()
        # Pages without records take the "under" colour; cells past a file's last page none.
        colors = matplotlib.colormaps["Blues"].with_extremes(under=LIGHT_RED, bad="white")
        image = axes.imshow(grid, aspect="auto", cmap=colors, interpolation="nearest",
                            norm=Normalize(vmin=0.5, vmax=max(1.0, float(numpy.nanmax(grid)))),
                            extent=(0.5, grid.shape[1] + 0.5, len(shown) - 0.5, -0.5))
        _integers(figure.colorbar(image, ax=axes, label="records", extend="min").ax.yaxis)
        axes.set_yticks(range(len(shown)), [f"{_tail(gap.document_id)} ({gap.unit}s)"
                                             for gap in shown])
        axes.set_xlabel("page or slide (light red: no record)")
        _integers(axes.xaxis)
        return Plot(name, title, _svg(figure), _page_note(gaps, len(shown)))


def _page_note(gaps: list[PageGaps], shown: int) -> str:
    empty = sum(len(gap.empty()) for gap in gaps)
    notes = [f"{empty} page(s) or slide(s) gave no record" if empty
             else "every page and slide gave records"]
    if shown < len(gaps):
        notes.append(f"the first {shown} of {len(gaps)} files shown")
    uncounted = sum(1 for gap in gaps if not gap.counted)
    if uncounted:
        notes.append(f"{uncounted} file(s) without a page count in the manifest: pages after "
                     "the last one with a record cannot be seen")
    return "; ".join(notes)


def stop_reasons(summary: ReportSummary) -> Plot:
    name, title = "stop-reasons", "Documents short of their target, by stop reason"
    shorts = summary.short_of_target()
    if shorts is None:
        return Plot(name, title, note=UNKNOWN)
    if not shorts:
        target = summary.option("target_records")
        return Plot(name, title, note=f"every document met its target of {target} records"
                    if target else "no --target-records: no document stops short of a target")
    reasons = Counter(reason for _, reason, _ in shorts)
    return _bars(name, title, [_head(reason) for reason in reasons], list(reasons.values()),
                 "documents", f"{len(shorts)} document(s) short of target", [RED])


def ratings(summary: ReportSummary) -> Plot:
    name, title = "ratings", "The judge's ratings"
    rated = summary.lines.ratings
    if not rated:
        return Plot(name, title, note="the judge was on, but no record kept has a rating"
                    if summary.judged() else "judge off: no record has a rating")
    values = list(rated.elements())
    with _style(name):
        figure = Figure(figsize=(6.0, 2.8))
        axes = figure.subplots()
        bars = axes.bar(range(1, 11), [rated.get(score, 0) for score in range(1, 11)],
                        color=BLUE, edgecolor="white")
        axes.bar_label(bars, padding=2)
        axes.set_xticks(range(1, 11))
        axes.set_xlabel("rating (1 to 10; records kept at or above --min-rating)")
        axes.set_ylabel("records")
        _integers(axes.yaxis)
        return Plot(name, title, _svg(figure), f"{len(values)} rated, mean "
                    f"{statistics.fmean(values):.1f}, median {statistics.median(values):g}")


def record_outcomes(summary: ReportSummary) -> Plot:
    name, title = "record-outcomes", "What became of the records the model wrote"
    outcomes = summary.record_outcomes()
    if outcomes is None:
        return Plot(name, title, note=UNKNOWN)
    if not any(outcomes.values()):
        return Plot(name, title, note="the server counted no records in this run")
    generated = (summary.counts or {}).get("records", {}).get("generated")
    return _bars(name, title, list(outcomes), list(outcomes.values()), "records",
                 f"{generated} generated in this run" if generated is not None else "",
                 [BLUE] + [RED] * (len(outcomes) - 1))


def failed_chunks(summary: ReportSummary) -> Plot:
    name, title = "failed-chunks", "Failed chunks, by reason"
    reasons = summary.failed_chunks()
    if reasons is None:
        return Plot(name, title, note=UNKNOWN)
    if not reasons:
        done = (summary.counts or {}).get("chunks_done")
        return Plot(name, title, note=f"no chunk failed ({done} done)")
    common = reasons.most_common(MAX_BARS)
    return _bars(name, title, [_head(reason) for reason, _ in common],
                 [count for _, count in common], "chunks",
                 f"{sum(reasons.values())} chunk(s) failed", [RED])


def lengths(summary: ReportSummary) -> Plot:
    name, title = "lengths", "Lengths of the records' texts"
    panels = summary.lines.lengths
    if not panels:
        return Plot(name, title, note="no records")
    medians = ", ".join(f"{label}: median {statistics.median(values):g}"
                        for label, values in panels.items())
    return _histogram(name, title, panels, "length", medians)


def evidence_coverage(summary: ReportSummary) -> Plot:
    name, title = "evidence-coverage", "Evidence coverage per chunk"
    shares = summary.coverages()
    if not shares:
        return Plot(name, title, note="no record cites a sentence" if summary.evidence_asked()
                    else "evidence off: the run did not ask records to cite sentences "
                    "(--evidence)")
    note = (f"{len(shares)} chunk(s), mean {statistics.fmean(shares):.0%}; "
            f"{summary.lines.with_evidence} of {summary.lines.records} records cite sentences")
    return _histogram(name, title, {"chunks by the share of sentences cited": shares},
                      "distinct sentences cited / highest sentence number cited", note,
                      bins=list(numpy.linspace(0.0, 1.0, 11)))


def question_openings(summary: ReportSummary) -> Plot:
    name, title = "question-openings", "Most repeated question openings"
    lines = summary.lines
    if not lines.questions:
        shapes = ", ".join(sorted(lines.shapes)) or "no"
        return Plot(name, title, note=f"no questions: {shapes} records have none")
    common = lines.openings.most_common(TOP_OPENINGS)
    note = (f"{len(lines.openings)} distinct openings (first three words) of "
            f"{lines.questions} questions")
    return _bars(name, title, [_head(opening) for opening, _ in common],
                 [count for _, count in common], "questions", note)


PLOTS: tuple[Callable[[ReportSummary], Plot], ...] = (
    records_per_document, records_per_page, record_outcomes, failed_chunks, stop_reasons,
    ratings, lengths, evidence_coverage, question_openings)


def draw_all(summary: ReportSummary) -> list[Plot]:
    return [draw(summary) for draw in PLOTS]

