"""`make bench-ingest`: what reading documents costs (issue 23), in two modes.

Extraction (the default; no server, a couple of minutes): a seeded corpus of realistic files
(ingest_corpus.py), each format read in one process by synthqa's extraction
(`ingest.extract_file`) and by the bare library call on the same files (pypdfium2's text page
by page, trafilatura with synthqa's arguments, python-docx's paragraphs and cells,
python-pptx's shapes and notes, `bytes.decode`), the two side by side in interleaved rounds.
Pages (PDF), slides (PPTX) or documents per second, per core (the process's CPU time) and on
the wall clock, MB/s of input, and synthqa's rate over the library's. Then the whole corpus
through the extraction pool generate uses (worker processes, started each round).

End to end (`--target HOST:PORT`, or `--serve` to start a server on `--model`): does
extraction make the stream wait? The same few hundred mixed documents go through
`synthqa generate` twice per repeat, alternately: (a) the folder of files, extracted on the
fly by the pool, (b) their text extracted beforehand (`synthqa extract --out docs.jsonl`,
each document's text then written to a .txt file, since generate reads files). Documents,
chunks and records per second of each, and (a) over (b): 1.0 means the engine was kept as
busy as with the text ready.

    make bench-ingest [BENCH_ARGS="--files 10 --rounds 5"]
    make bench-ingest BENCH_ARGS="--serve --documents 200"          # starts the tiny model
    make bench-ingest BENCH_ARGS="--target localhost:50051"         # a server already up

Writes bench/results/<time>-ingest.json and .md (end to end: <time>-ingest-e2e.*). Ratios
from one run are what to quote: the machines are shared.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .ingest_corpus import FORMATS, LARGE, SMALL, CorpusFile, build_corpus, spread

ARMS = ("synthqa", "raw")
LIBRARIES = ("pypdfium2", "trafilatura", "python-docx", "python-pptx", "charset-normalizer",
             "lxml")
# The tiny model's engine flags, as the other benchmarks start it; no result cache and no
# prefix cache, so that neither arm is served from what the other left behind.
# The start-up is left out of a run's rate only where it is less than this share of the run.
NET_START_UP_SHARE = 0.25
TINY_SERVER_ARGS = ("--max-model-len 2048 --enforce-eager --no-enable-prefix-caching "
                    "--no-cache")


# The library calls alone, each returning how many characters it read.

def raw_pdf(data: bytes) -> int:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    chars = 0
    for index in range(len(document)):
        page = document[index]
        text_page = page.get_textpage()
        chars += len(text_page.get_text_range())
        text_page.close()
        page.close()
    document.close()
    return chars


def raw_html(data: bytes) -> int:
    import trafilatura

    # synthqa's arguments (ingest/html.py): the ratio is then synthqa's own layer.
    return len(trafilatura.extract(
        data, output_format="markdown", include_tables=True, include_comments=False,
        include_images=False, include_links=False, favor_recall=True) or "")


def raw_docx(data: bytes) -> int:
    import docx

    document = docx.Document(io.BytesIO(data))
    return (sum(len(paragraph.text) for paragraph in document.paragraphs)
            + sum(len(cell.text) for table in document.tables for row in table.rows
                  for cell in row.cells))


def raw_pptx(data: bytes) -> int:
    import pptx

    chars = 0
    for slide in pptx.Presentation(io.BytesIO(data)).slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                chars += len(shape.text_frame.text)
            elif getattr(shape, "has_table", False):
                chars += sum(len(cell.text) for row in shape.table.rows for cell in row.cells)
        if slide.has_notes_slide:
            chars += len(slide.notes_slide.notes_text_frame.text)
    return chars


RAW: dict[str, Callable[[bytes], int]] = {
    "pdf": raw_pdf, "html": raw_html, "docx": raw_docx, "pptx": raw_pptx,
    "markdown": lambda data: len(data.decode("utf-8")),
    "utf16": lambda data: len(data.decode("utf-16")),
    # The encoding known beforehand: what detecting it costs shows in the ratio.
    "cp1252": lambda data: len(data.decode("cp1252")),
    "gz": lambda data: len(gzip.decompress(data).decode("utf-8")),
}
RAW_CALLS = {
    "pdf": "pypdfium2: get_textpage().get_text_range() per page",
    "html": "trafilatura.extract (Markdown, tables, favor_recall: synthqa's arguments)",
    "docx": "python-docx: paragraphs' and table cells' text",
    "pptx": "python-pptx: shapes' text, tables, notes",
    "markdown": "bytes.decode('utf-8')",
    "utf16": "bytes.decode('utf-16')",
    "cp1252": "bytes.decode('cp1252') (the encoding known)",
    "gz": "gzip.decompress + decode",
}


def synthqa_read(path: Path) -> int:
    from synthqa.client.ingest import extract_file

    return len(extract_file(path)[0].text)


def reader(arm: str, name: str) -> Callable[[Path], int]:
    if arm == "synthqa":
        return synthqa_read
    raw = RAW[name]
    return lambda path: raw(path.read_bytes())


def timed_pass(files: Sequence[CorpusFile], read: Callable[[Path], int],
               repeat: int) -> dict[str, float]:
    """Every file read `repeat` times: CPU seconds of this process and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        for file in files:
            read(file.path)
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}


def rates(samples: Sequence[dict[str, float]], units: float, megabytes: float
          ) -> dict[str, dict[str, float]]:
    """Median, min and max of units and MB per CPU second and per wall second, over the
    samples (each one pass of `units` units and `megabytes` MB)."""
    out = {}
    for clock in ("cpu", "wall"):
        for what, amount in (("units", units), ("mb", megabytes)):
            values = [amount / max(sample[clock], 1e-9) for sample in samples]
            out[f"{what}_per_{clock}_s"] = {"median": statistics.median(values),
                                            "min": min(values), "max": max(values)}
    return out


def ratio(synthqa: dict[str, Any], raw: dict[str, Any], key: str) -> float:
    """synthqa's median rate over the library's: 1.0 costs nothing on top, 0.5 twice the time."""
    return float(synthqa[key]["median"] / raw[key]["median"])


def run_extraction(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    from synthqa.client.ingest.pool import default_workers, extract_in_order

    host = machine()
    with tempfile.TemporaryDirectory(prefix="synthqa-bench-ingest-") as folder:
        files = build_corpus(Path(folder), {name: args.files for name in FORMATS}, LARGE,
                             seed=args.seed)
        by_format = {name: [f for f in files if f.format == name] for name in FORMATS}
        # Warm: imports and the libraries' first-call set-up, then a timed pass that sets how
        # often each arm reads its files per sample (a sample lasts about --seconds).
        chars_out: dict[str, int] = {}
        repeat: dict[tuple[str, str], int] = {}
        for name, group in by_format.items():
            chars_out[name] = sum(synthqa_read(f.path) for f in group)  # raises if unreadable
            for arm in ARMS:
                timed_pass(group, reader(arm, name), 1)
                once = timed_pass(group, reader(arm, name), 1)["wall"]
                repeat[name, arm] = max(1, math.ceil(args.seconds / max(once, 1e-6)))
        samples: dict[tuple[str, str], list[dict[str, float]]] = {
            key: [] for key in repeat}
        pool_samples: list[dict[str, float]] = []
        for round_ in range(args.rounds):
            for index, (name, group) in enumerate(by_format.items()):
                # Which arm goes first alternates, format by format and round by round.
                for arm in ARMS if (round_ + index) % 2 == 0 else ARMS[::-1]:
                    samples[name, arm].append(timed_pass(group, reader(arm, name),
                                                         repeat[name, arm]))
            wall = time.perf_counter()
            done = sum(1 for _ in extract_in_order([f.path for f in files]))
            pool_samples.append({"wall": time.perf_counter() - wall, "documents": done})
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    formats: dict[str, Any] = {}
    for name, group in by_format.items():
        units = sum(f.units for f in group)
        megabytes = sum(f.size for f in group) / 1e6
        figures = {arm: {"passes_per_sample": repeat[name, arm], "samples": samples[name, arm],
                         **rates(samples[name, arm], units * repeat[name, arm],
                                 megabytes * repeat[name, arm])} for arm in ARMS}
        formats[name] = {
            "files": len(group), "unit": FORMATS[name][1], "units": units,
            "megabytes": megabytes, "chars_out": chars_out[name], "raw_call": RAW_CALLS[name],
            **figures,
            "synthqa_vs_raw_cpu": ratio(figures["synthqa"], figures["raw"], "units_per_cpu_s"),
            "synthqa_vs_raw_wall": ratio(figures["synthqa"], figures["raw"], "units_per_wall_s"),
        }
    pool_walls = [s["wall"] for s in pool_samples]
    return {
        "run": stamp, "mode": "extraction", "label": args.label, "seed": args.seed,
        "files_per_format": args.files, "rounds": args.rounds, "sample_seconds": args.seconds,
        "sizes": LARGE.__dict__, "machine": {**host, "load_average_at_end": os.getloadavg()},
        "formats": formats,
        "pool": {"workers": default_workers(), "documents": len(files),
                 "wall_s": {"median": statistics.median(pool_walls), "min": min(pool_walls),
                            "max": max(pool_walls)},
                 "documents_per_s": len(files) / statistics.median(pool_walls),
                 "samples": pool_samples},
    }


def extraction_table(report: dict[str, Any]) -> str:
    lines = [
        f"Extraction, run {report['run']}: {report['files_per_format']} files per format, "
        f"{report['rounds']} interleaved rounds, medians (min–max); one process, rates per "
        "CPU second of the process (per core) and per wall second.", "",
        "| format | files (MB) | unit | synthqa, units/s per core | library alone, units/s "
        "per core | × library (CPU) | × library (wall) | synthqa MB/s per core | library "
        "MB/s per core | library call |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for name, f in report["formats"].items():
        ours, raw = f["synthqa"], f["raw"]
        lines.append(
            f"| {name} | {f['files']} ({f['megabytes']:.2f}) | {f['unit']} "
            f"({f['units'] / f['files']:.1f}/file) | {_range(ours['units_per_cpu_s'])} | "
            f"{_range(raw['units_per_cpu_s'])} | {f['synthqa_vs_raw_cpu']:.2f}× | "
            f"{f['synthqa_vs_raw_wall']:.2f}× | {ours['mb_per_cpu_s']['median']:.2f} | "
            f"{raw['mb_per_cpu_s']['median']:.2f} | {f['raw_call']} |")
    pool = report["pool"]
    lines += ["", f"The extraction pool (as generate runs it: {pool['workers']} worker "
              f"process(es), started each time) over the whole corpus of {pool['documents']} "
              f"files: {_range(pool['wall_s'], 2)} s wall, "
              f"{pool['documents_per_s']:.1f} documents/s."]
    return "\n".join(lines) + "\n"


def _range(figure: dict[str, float], digits: int | None = None) -> str:
    def number(value: float) -> str:
        places = digits if digits is not None else (0 if value >= 100 else 1)
        return f"{value:,.{places}f}"
    return f"{number(figure['median'])} ({number(figure['min'])}–{number(figure['max'])})"


def machine() -> dict[str, Any]:
    def installed(name: str) -> str | None:
        try:
            return version(name)
        except Exception:
            return None
    return {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(), "platform": platform.platform(),
            "libraries": {name: installed(name) for name in LIBRARIES}}


# End to end: the CLI against a server.

def cli(arguments: Sequence[str | Path], target: str | None = None,
        exit_codes: Sequence[int] = (0,)) -> dict[str, Any]:
    """One `synthqa` command in a process of its own: its wall seconds and the CPU seconds of
    it and its extraction workers. An exit code not in `exit_codes` raises."""
    command = [sys.executable, "-m", "synthqa.client.cli"]
    if target is not None:
        command += ["--target", target, "--timeout", "3600"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run([*command, *map(str, arguments)], capture_output=True, text=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in exit_codes:
        raise RuntimeError(f"synthqa {' '.join(map(str, arguments))} exited with "
                           f"{done.returncode}:\n{done.stderr[-3000:]}")
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime)
            + (after.ru_stime - before.ru_stime)}


def text_folder(docs_jsonl: Path, folder: Path) -> int:
    """Each document's extracted text as `<document id>.txt` under `folder`: what generate
    reads when the text was extracted beforehand. Checks that each .txt reads back as that
    same text (so both arms send the same documents). Returns how many were written."""
    from synthqa.client.ingest import extract_bytes

    written = 0
    with docs_jsonl.open(encoding="utf-8") as lines:
        for line in lines:
            document = json.loads(line)
            path = folder / (document["document_id"] + ".txt")
            path.parent.mkdir(parents=True, exist_ok=True)
            data = document["text"].encode("utf-8")
            path.write_bytes(data)
            if extract_bytes(data, path.name).text != document["text"]:
                raise RuntimeError(f"{path} does not read back as the text extracted")
            written += 1
    return written


def generate_arguments(args: argparse.Namespace) -> list[str]:
    return ["--no-progress", "--streams", str(args.streams),
            "--num-pairs", str(args.num_pairs),
            "--max-generation-tokens", str(args.max_generation_tokens),
            "--max-chunk-tokens", str(args.max_chunk_tokens), "--chunk-overlap-tokens", "0"]


def generate_run(target: str, folder: Path, work: Path, name: str,
                 args: argparse.Namespace) -> dict[str, Any]:
    out, summary = work / f"{name}.jsonl", work / f"{name}.summary.json"
    # Exit 3: the call finished with some chunks failed; the summary says how many.
    timing = cli(["generate", folder, "--out", out, "--summary-json", summary,
                  *generate_arguments(args)], target, exit_codes=(0, 3))
    counts = json.loads(summary.read_text(encoding="utf-8"))
    run = {**timing, "documents": counts["documents_done"],
           "chunks": counts["chunks_done"], "chunks_failed": counts["chunks_failed"],
           "records": counts["records_written"],
           "records_generated": counts["records"]["generated"],
           "records_invalid": counts["records"]["invalid"], "skipped": len(counts["skipped"])}
    for what in ("documents", "chunks", "records"):
        run[f"{what}_per_s"] = run[what] / wall if (wall := run["wall"]) else 0.0
    return run


def run_end_to_end(args: argparse.Namespace, stamp: str, target: str) -> dict[str, Any]:
    host = machine()
    with tempfile.TemporaryDirectory(prefix="synthqa-bench-ingest-e2e-") as temporary:
        work = Path(temporary)
        files = build_corpus(work / "files", spread(args.documents), SMALL, seed=args.seed,
                             shuffle=True)
        # The text beforehand, through the same pool (its cost is a figure too).
        extracted = cli(["extract", work / "files", "--out", work / "docs.jsonl"])
        documents = text_folder(work / "docs.jsonl", work / "text")
        # What starting the command costs (Python, imports, the pool's worker): in both arms'
        # wall time alike.
        (work / "one").mkdir()
        (work / "one" / "one.txt").write_text("The keeper climbs the stairs at dusk.\n")
        start_up = statistics.median(
            cli(["extract", work / "one", "--out", work / "one.jsonl"])["wall"]
            for _ in range(3))
        # Warm: the server's grammar compiled, the connection path exercised.
        (work / "warm").mkdir()
        for path in sorted((work / "text").iterdir())[:4]:
            (work / "warm" / path.name).write_bytes(path.read_bytes())
        generate_run(target, work / "warm", work, "warm", args)
        arms = {"files": work / "files", "text": work / "text"}
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
        for repeat in range(args.repeats):
            # a, b then b, a: drift over the run weighs on both arms alike.
            for arm in list(arms) if repeat % 2 == 0 else list(arms)[::-1]:
                run = generate_run(target, arms[arm], work, f"{arm}-{repeat}", args)
                runs[arm].append(run)
                print(f"repeat {repeat + 1}/{args.repeats} {arm}: {run['documents']} "
                      f"documents, {run['chunks']} chunks, {run['records']} records in "
                      f"{run['wall']:.1f} s", file=sys.stderr, flush=True)
    figures = {arm: summarize_runs(rs, start_up) for arm, rs in runs.items()}
    return {
        "run": stamp, "mode": "end-to-end", "label": args.label, "target": target,
        "served_here": args.serve, "model": args.model if args.serve else None,
        "seed": args.seed, "repeats": args.repeats, "sizes": SMALL.__dict__,
        "corpus": {"documents": len(files), "by_format": spread(args.documents),
                   "pages": sum(f.units for f in files if f.format == "pdf"),
                   "slides": sum(f.units for f in files if f.format == "pptx"),
                   "megabytes": sum(f.size for f in files) / 1e6,
                   "text_files_written": documents},
        "options": generate_arguments(args),
        "machine": {**host, "load_average_at_end": os.getloadavg()},
        "extract_beforehand": {**extracted,
                               "documents_per_s": len(files) / extracted["wall"]},
        "cli_start_up_s": start_up, "arms": figures,
        "files_vs_text": {what: figures["files"][what]["median"]
                          / figures["text"][what]["median"]
                          for what in ("documents_per_s", "chunks_per_s", "records_per_s",
                                       "documents_per_s_net")
                          if what in figures["files"] and what in figures["text"]},
        "runs": runs,
    }


def summarize_runs(runs: Sequence[dict[str, Any]], start_up: float) -> dict[str, Any]:
    """Medians (min, max) of an arm's runs; `_net` rates leave out the command's start-up."""
    figures: dict[str, Any] = {}
    for what in ("documents_per_s", "chunks_per_s", "records_per_s", "wall", "cpu",
                 "chunks", "records"):
        values = [run[what] for run in runs]
        figures[what] = {"median": statistics.median(values), "min": min(values),
                         "max": max(values)}
    # Only where the start-up is a small part of a run: else the difference is mostly noise.
    if start_up < NET_START_UP_SHARE * figures["wall"]["median"]:
        net = [run["documents"] / (run["wall"] - start_up) for run in runs]
        figures["documents_per_s_net"] = {"median": statistics.median(net), "min": min(net),
                                          "max": max(net)}
    return figures


def end_to_end_table(report: dict[str, Any]) -> str:
    corpus = report["corpus"]
    lines = [
        f"End to end, run {report['run']} against {report['target']}: {corpus['documents']} "
        f"mixed documents ({corpus['pages']} PDF pages, {corpus['slides']} slides, "
        f"{corpus['megabytes']:.1f} MB), `synthqa generate {' '.join(report['options'])}`, "
        f"{report['repeats']} repeats alternating, medians (min–max).", "",
        "| arm | documents/s | chunks/s | records/s | wall s | client CPU s (with workers) |",
        "|---|---|---|---|---|---|"]
    names = {"files": "(a) the files, extracted on the fly",
             "text": "(b) the text, extracted beforehand"}
    for arm, f in report["arms"].items():
        lines.append(f"| {names[arm]} | {_range(f['documents_per_s'], 2)} | "
                     f"{_range(f['chunks_per_s'], 2)} | {_range(f['records_per_s'], 2)} | "
                     f"{_range(f['wall'], 1)} | {_range(f['cpu'], 1)} |")
    ratios = report["files_vs_text"]
    before = report["extract_beforehand"]
    net = (f"{ratios['documents_per_s_net']:.2f}×" if "documents_per_s_net" in ratios
           else "not given (the start-up is too large a part of each run)")
    failed = {arm: sum(run["chunks_failed"] for run in runs)
              for arm, runs in report["runs"].items()}
    # The same text gives the same chunks: anything else and the arms did different work.
    chunk_counts = {run["chunks"] + run["chunks_failed"] for runs in report["runs"].values()
                    for run in runs}
    same = ("every run had the same chunks" if len(chunk_counts) == 1
            else f"WARNING: the runs had different chunk counts {sorted(chunk_counts)}")
    lines += ["", f"(a) / (b): documents/s {ratios['documents_per_s']:.2f}×, chunks/s "
              f"{ratios['chunks_per_s']:.2f}×, records/s {ratios['records_per_s']:.2f}×; "
              f"documents/s without the command's start-up (about "
              f"{report['cli_start_up_s']:.1f} s, in both arms): {net}. Chunks failed: "
              f"{failed['files']} (a), {failed['text']} (b); {same}. `synthqa extract` of "
              "the same "
              f"files alone: {before['wall']:.1f} s wall, {before['documents_per_s']:.1f} "
              "documents/s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthqa-bench-ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10, help="extraction: files per format")
    parser.add_argument("--rounds", type=int, default=5, help="extraction: interleaved rounds")
    parser.add_argument("--seconds", type=float, default=0.25,
                        help="extraction: about how long each timed sample reads")
    parser.add_argument("--seed", type=int, default=20261207, help="the corpus's seed")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--label", default="", help="a name for this run in the results")
    end = parser.add_argument_group("end to end (a server's engine busy with or without "
                                    "extraction on the fly)")
    where = end.add_mutually_exclusive_group()
    where.add_argument("--target", default=None, metavar="HOST:PORT",
                       help="a running server (unseeded calls: its result cache is not used)")
    where.add_argument("--serve", action="store_true",
                       help="start a server on --model for the run, and stop it after")
    end.add_argument("--model", default=".cache/tiny-model")
    end.add_argument("--server-args", default=TINY_SERVER_ARGS,
                     help="the started server's flags (default: %(default)s)")
    end.add_argument("--documents", type=int, default=200)
    end.add_argument("--repeats", type=int, default=3)
    end.add_argument("--streams", type=int, default=1)
    end.add_argument("--num-pairs", type=int, default=1)
    end.add_argument("--max-generation-tokens", type=int, default=64)
    end.add_argument("--max-chunk-tokens", type=int, default=512)
    args = parser.parse_args(argv)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.target is None and not args.serve:
        report = run_extraction(args, stamp)
        table, name = extraction_table(report), f"{stamp}-ingest"
    else:
        server = None
        target = args.target
        if args.serve:
            server, target = start_server(args, stamp)
        try:
            report = run_end_to_end(args, stamp, target)
        finally:
            if server is not None:
                server.stop()
        table, name = end_to_end_table(report), f"{stamp}-ingest-e2e"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(table)
    print(f"\n{table}\nwritten to {args.out / name}.json and .md")
    return 0


def start_server(args: argparse.Namespace, stamp: str, name: str = "ingest"
                 ) -> tuple[Any, str]:
    """A server on `args.model` with `args.server_args`, logging to
    `args.out/logs/<stamp>/<name>-server.log` (ray_bench starts its replicas with it too)."""
    # Imported here: the servers module imports vLLM, which extraction alone does not need.
    from .servers import BenchServer, _grpc_serving, free_port

    port = free_port()
    target = f"127.0.0.1:{port}"
    server = BenchServer(
        f"synthqa-{name}",
        [sys.executable, "-m", "synthqa.server", "--model", args.model, "--port", str(port),
         *shlex.split(args.server_args)],
        lambda: _grpc_serving(target), args.out / "logs" / stamp / f"{name}-server.log")
    server.start()
    return server, target


if __name__ == "__main__":
    sys.exit(main())
