"""`synthqa report`: a run's output lines and manifest as one HTML page to look at, and the
same summary in a few lines for the terminal. What each plot shows: docs/clients.md
("Report").

The page fetches nothing when opened: each plot is an SVG in a data: URI, the style is inline,
there is no script, and its Content-Security-Policy forbids anything else. Every text that
comes from the run (document ids, records, reasons, options) is HTML-escaped: it is user
data. No record text goes to the terminal."""

from __future__ import annotations

import base64
import html
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report_data import ReportError, ReportSummary, summarize
from .run_manifest import manifest_path

if TYPE_CHECKING:
    from .report_plots import Plot

__all__ = ["DATASET_HINT", "ReportError", "ReportSummary", "render", "summary_lines",
           "write_report"]

DATASET_HINT = ("the report's plots need the dataset extra (matplotlib): "
                "pip install 'synthqa-client[dataset]'")
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# Rows of a list (documents without records, failures, ...) and documents with samples: past
# these the page says how many more there are.
MAX_ROWS = 200
MAX_SAMPLE_DOCUMENTS = 50
OPTION_CHARS = 200
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 64em; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { margin-bottom: 0; }
section { margin-top: 2.5em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.5em 0; }
img.plot { max-width: 100%; height: auto; }
figcaption, .no-plot, .unknown { color: #555; }
.no-plot { font-style: italic; padding: 1em; background: #f4f4f4; }
.record { white-space: pre-wrap; overflow-wrap: anywhere; }
.field { font-weight: bold; margin-right: 0.4em; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _plots_module() -> Any:
    try:
        from . import report_plots
    except ImportError as error:
        if (error.name or "").split(".")[0] in ("matplotlib", "numpy"):
            raise ReportError(DATASET_HINT) from None
        raise
    return report_plots


def write_report(run: Path, out: Path) -> ReportSummary:
    """Reads the run (and `<run>.manifest.json` beside it) and writes the page to `out`,
    whole or not at all; ReportError when the run cannot be read or the dataset extra is
    missing."""
    if out.resolve() in (run.resolve(), manifest_path(run).resolve()):
        raise ReportError(f"--out {out} would overwrite the run it reports on")
    plots = _plots_module()
    summary = summarize(run)
    page = render(summary, plots.draw_all(summary))
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, out)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ReportError(f"{out}: {error.strerror or error}") from None
    return summary


def render(summary: ReportSummary, plots: list[Plot]) -> str:
    parts = [_header(summary), _counts(summary), _options(summary)]
    parts += [_section(plot, DETAILS.get(plot.name), summary) for plot in plots]
    parts.append(_samples(summary))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>synthqa report: {_e(summary.run.name)}</title>",
        f"<style>{STYLE}</style>", "</head>", "<body>", *parts, "</body>", "</html>", ""])


def _header(summary: ReportSummary) -> str:
    lines = ["<header>", "<h1>synthqa report</h1>", f'<p id="run">{_e(summary.run.name)}</p>']
    manifest = summary.manifest
    if manifest is None:
        lines.append(f'<p class="unknown" id="no-manifest">{_e(summary.manifest_note)}. '
                     "Without it these are unknown: the server and its model, the options, "
                     "the records generated, invalid, judged out and duplicates, failed "
                     "chunks, skipped files, documents short of their target, documents and "
                     "pages that gave nothing.</p>")
    else:
        server = manifest.get("server") or {}
        facts = [("model", server.get("model", "unknown: the server could not be asked")),
                 ("server version", server.get("version")),
                 ("client version", manifest.get("synthqa_client")),
                 ("started", manifest.get("started")), ("ended", manifest.get("ended")),
                 ("command", " ".join(manifest.get("command") or ()))]
        lines.append('<table id="run-facts">')
        lines += [f"<tr><th>{_e(label)}</th><td>{_e(value)}</td></tr>"
                  for label, value in facts if value is not None]
        lines.append("</table>")
    lines.append("</header>")
    return "\n".join(lines)


# The manifest's counts the page shows: (data-count key, label, where in counts).
_MANIFEST_COUNTS = (
    ("documents_sent", "documents sent", ("documents_sent",)),
    ("documents_done", "documents done", ("documents_done",)),
    ("generated", "records generated", ("records", "generated")),
    ("invalid", "records invalid", ("records", "invalid")),
    ("judged_out", "records judged out", ("records", "judged_out")),
    ("duplicates", "records duplicates", ("records", "duplicates")),
    ("kept", "records kept (this run)", ("records", "kept")),
    ("chunks_done", "chunks done", ("chunks_done",)),
    ("chunks_failed", "chunks failed", ("chunks_failed",)),
    ("cached_chunks", "chunks from the cache", ("cached_chunks",)),
)


def _count(counts: dict[str, Any] | None, path: tuple[str, ...]) -> Any:
    value: Any = counts
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return "unknown"
        value = value[key]
    return value


def _counts(summary: ReportSummary) -> str:
    counts = summary.counts
    rows: list[tuple[str, str, object]] = [
        ("records", "records in the file", summary.lines.records),
        ("documents", "documents with records", len(summary.lines.documents))]
    rows += [(key, label, _count(counts, path)) for key, label, path in _MANIFEST_COUNTS]
    for key, label in (("skipped", "files skipped"), ("short_of_target", "short of target")):
        listed = counts.get(key) if counts is not None else None
        rows.append((key, label, len(listed) if isinstance(listed, list) else "unknown"))
    body = "\n".join(f'<tr data-count="{_e(key)}"><th>{_e(label)}</th>'
                     f'<td class="number">{_e(value)}</td></tr>' for key, label, value in rows)
    return f'<section id="counts-section"><h2>Counts</h2>\n<table id="counts">\n{body}\n' \
           "</table></section>"


def _options(summary: ReportSummary) -> str:
    if summary.manifest is None:
        return ""
    options = summary.manifest.get("options") or {}
    if not options:
        return '<section id="options-section"><h2>Options</h2><p>none given: the server\'s ' \
               "defaults</p></section>"
    rows = []
    for name, value in options.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) > OPTION_CHARS:
            text = text[:OPTION_CHARS - 1] + "…"
        rows.append(f'<tr><th>{_e(name)}</th><td class="record">{_e(text)}</td></tr>')
    return '<section id="options-section"><h2>Options</h2><table id="options">' + \
        "\n".join(rows) + "</table></section>"


def _section(plot: Plot, details: Callable[[ReportSummary], str] | None,
             summary: ReportSummary) -> str:
    name = _e(plot.name)
    lines = [f'<section id="section-{name}">', f"<h2>{_e(plot.title)}</h2>"]
    if plot.svg is None:
        lines.append(f'<p class="no-plot" id="plot-{name}" data-plot="{name}">'
                     f"{_e(plot.note)}</p>")
    else:
        data = base64.b64encode(plot.svg.encode("utf-8")).decode("ascii")
        lines += ["<figure>",
                  f'<img class="plot" id="plot-{name}" data-plot="{name}" '
                  f'alt="{_e(plot.title)}" src="data:image/svg+xml;base64,{data}">',
                  f"<figcaption>{_e(plot.note)}</figcaption>" if plot.note else "",
                  "</figure>"]
    if details is not None:
        lines.append(details(summary))
    lines.append("</section>")
    return "\n".join(line for line in lines if line)


def _table(table_id: str, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    """Escaped cells, at most MAX_ROWS rows and a line saying how many more."""
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "\n".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>"
                     for row in rows[:MAX_ROWS])
    more = f"<p>and {len(rows) - MAX_ROWS} more</p>" if len(rows) > MAX_ROWS else ""
    return f'<table id="{_e(table_id)}"><tr>{head}</tr>\n{body}\n</table>{more}'


def _documents_without_records(summary: ReportSummary) -> str:
    empty = summary.documents_without_records()
    if not empty:
        return ""
    return "<h3>Documents without records</h3>" + _table(
        "documents-without-records", ("document", "why"), list(empty))


def _ranges(pages: list[int]) -> str:
    """[1, 2, 3, 7] → "1–3, 7"."""
    spans: list[list[int]] = []
    for page in pages:
        if spans and page == spans[-1][1] + 1:
            spans[-1][1] = page
        else:
            spans.append([page, page])
    return ", ".join(f"{start}–{end}" if end > start else str(start) for start, end in spans)


def _pages_without_records(summary: ReportSummary) -> str:
    rows: list[tuple[object, ...]] = [
        (gap.document_id, f"{gap.unit}s", f"{gap.total}" + ("" if gap.counted else "+"),
         _ranges(gap.empty())) for gap in summary.page_gaps() if gap.empty()]
    if not rows:
        return ""
    return "<h3>Pages and slides without records</h3>" + _table(
        "pages-without-records", ("document", "of", "count (+: at least)", "without records"),
        rows)


def _short_of_target(summary: ReportSummary) -> str:
    shorts = summary.short_of_target()
    if not shorts:
        return ""
    return _table("short-of-target", ("document", "stop reason", "records"), list(shorts))


def _failures(summary: ReportSummary) -> str:
    failures = (summary.counts or {}).get("failures") or []
    if not failures:
        return ""
    return _table("failures", ("failure",), [(failure,) for failure in failures])


DETAILS: dict[str, Callable[[ReportSummary], str]] = {
    "records-per-document": _documents_without_records,
    "records-per-page": _pages_without_records,
    "failed-chunks": _failures,
    "stop-reasons": _short_of_target,
}


def _samples(summary: ReportSummary) -> str:
    documents = list(summary.lines.documents.items())
    rows = []
    for document, tally in documents[:MAX_SAMPLE_DOCUMENTS]:
        for sample in tally.samples:
            record = "".join(f'<div><span class="field">{_e(name)}</span>{_e(text)}</div>'
                             for name, text in sample.fields)
            rating = "" if sample.rating is None else sample.rating
            rows.append(f"<tr><td>{_e(document)}</td><td>{sample.chunk_index}</td>"
                        f'<td>{_e(rating)}</td><td class="record">{record}</td></tr>')
    if not rows:
        return '<section id="section-samples"><h2>Sample records</h2><p>no records</p>' \
               "</section>"
    more = len(documents) - MAX_SAMPLE_DOCUMENTS
    return "\n".join([
        '<section id="section-samples"><h2>Sample records</h2>',
        f"<p>The first {min(len(documents), MAX_SAMPLE_DOCUMENTS)} documents' first records, "
        "as written.</p>",
        '<table id="samples"><tr><th>document</th><th>chunk</th><th>rating</th>'
        "<th>record</th></tr>", *rows, "</table>",
        f"<p>and {more} more documents</p>" if more > 0 else "", "</section>"])


def summary_lines(summary: ReportSummary, out: Path | None = None) -> list[str]:
    """The page's gist for the terminal: counts only, never record text."""
    lines = summary.lines
    where = f" to {out}" if out is not None else ""
    said = [f"report of {lines.records} records from {len(lines.documents)} document(s) in "
            f"{summary.run}{where}"]
    outcomes = summary.record_outcomes()
    if outcomes is None:
        said.append(f"  {summary.manifest_note}: counts of the server's records, failures "
                    "and skipped files unknown")
    else:
        failed = sum((summary.failed_chunks() or {}).values())
        said.append("  records: " + ", ".join(f"{count} {what}" for what, count in
                                              outcomes.items())
                    + f"; {failed} chunk(s) failed")
        empty = summary.documents_without_records() or []
        said.append(f"  documents without records: {len(empty)}")
    gaps = [gap for gap in summary.page_gaps() if gap.empty()]
    if gaps:
        said.append(f"  pages or slides without records: "
                    f"{sum(len(gap.empty()) for gap in gaps)} in {len(gaps)} file(s)")
    ratings = list(lines.ratings.elements())
    said.append(f"  ratings: {len(ratings)} rated, mean {statistics.fmean(ratings):.1f}"
                if ratings else "  ratings: judge off")
    shares = summary.coverages()
    if shares:
        said.append(f"  evidence: mean coverage {statistics.fmean(shares):.0%} over "
                    f"{len(shares)} chunk(s)")
    return said
