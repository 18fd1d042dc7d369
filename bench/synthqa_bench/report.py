"""Summaries of a benchmark run: medians with min and max per arm and concurrency, ratios
against `inprocess` from the same run, a Markdown table and PNG plots."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

FIGURES = ("output_tokens_per_second", "pairs_per_second", "documents_per_second",
           "chunk_latency_p50", "chunk_latency_p90", "chunk_latency_p99",
           "time_to_first_pair_p50", "time_to_first_pair_p99", "chunk_first_pair_share_p50",
           "wall_seconds",
           "server_cpu_seconds", "server_main_cpu_seconds", "server_peak_rss_bytes",
           "client_cpu_seconds")
FLOOR = "inprocess"


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, int | None], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        grouped[(run["arm"], run["concurrency"])].append(run)
    rows = []
    for (arm, concurrency), group in grouped.items():
        row: dict[str, Any] = {"arm": arm, "concurrency": concurrency, "runs": len(group),
                               "chunks_failed": sum(r["chunks_failed"] for r in group)}
        for name in FIGURES:
            row[name] = _spread([r[name] for r in group if r.get(name) is not None])
        rows.append(row)
    levels = sorted({c for _, c in grouped if c is not None})
    floor = {r["concurrency"]: r for r in rows if r["arm"] == FLOOR}
    for row in rows:
        # batch-wait has no concurrency: it is compared with the floor at saturation.
        reference = floor.get(row["concurrency"] if row["concurrency"] is not None
                              else (levels[-1] if levels else None))
        row["throughput_vs_inprocess"] = (
            row["output_tokens_per_second"]["median"]
            / reference["output_tokens_per_second"]["median"]
            if reference and row["output_tokens_per_second"] else None)
    bidi = {r["concurrency"]: r for r in rows if r["arm"] == BIDI}
    for row in rows:
        if row["arm"] in BIDI_VARIANTS and row["concurrency"] in bidi:
            row["throughput_vs_bidi"] = (
                row["output_tokens_per_second"]["median"]
                / bidi[row["concurrency"]]["output_tokens_per_second"]["median"])
    rows.sort(key=lambda r: (r["concurrency"] is None, r["concurrency"] or 0,
                             list(_ARM_ORDER).index(r["arm"]) if r["arm"] in _ARM_ORDER else 99))
    return rows


_ARM_ORDER = ("inprocess", "synthqa-bidi", "synthqa-traced", "synthqa-baseline",
              "synthqa-unary", "vllm-openai", "batch-wait")
# Variants of synthqa-bidi, each measured against it in the same run as well as against the
# floor: what tracing costs, and what changed since another checkout.
BIDI = "synthqa-bidi"
BIDI_VARIANTS = {"synthqa-traced": "tracing on, every span exported",
                 "synthqa-baseline": "the server of the baseline checkout"}


def _median(row: dict[str, Any], name: str) -> float | None:
    spread = row.get(name)
    return spread["median"] if spread else None


def _cell(row: dict[str, Any], name: str, scale: float = 1.0, digits: int = 2) -> str:
    spread = row.get(name)
    if not spread:
        return "–"
    return (f"{spread['median'] * scale:.{digits}f} "
            f"({spread['min'] * scale:.{digits}f}–{spread['max'] * scale:.{digits}f})")


def markdown(result: dict[str, Any]) -> str:
    workload = result["workload"]
    mix = "".join(f"; {group['documents']} documents with {group['options']}"
                  for group in workload.get("option_mix", []))
    split = result.get("split_cpus")
    placement = (f"; every engine on CPUs {split['engine']}, front ends and clients on "
                 f"{split['front']}" if split else "")
    lines = [
        f"Workload `{workload['name']}`: {workload['documents']} documents, "
        f"{workload['chunks']} chunks, options {workload['options']}{mix}; engine flags "
        f"`{' '.join(result['engine_args'])}`{placement}; {result['repeats']} repeats, "
        "median (min–max).",
        "",
        "| arm | docs in flight | output tok/s | × inprocess | pairs/s | docs/s | chunk p50 / p90 "
        "/ p99 s | first pair p50 / p99 s | first pair, share of chunk time | server CPU s "
        "| of it, front-end process | server peak RSS MiB | client CPU s | failed chunks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["summary"]:
        concurrency = (row["concurrency"] if row["concurrency"] is not None
                       else f"batches of {result['batch_size']}")
        ratio = row["throughput_vs_inprocess"]
        latency = " / ".join(
            f"{_median(row, f'chunk_latency_p{p}') or 0:.2f}" for p in (50, 90, 99))
        first = " / ".join(
            f"{_median(row, f'time_to_first_pair_p{p}') or 0:.2f}" for p in (50, 99))
        lines.append(
            f"| {row['arm']} | {concurrency} | {_cell(row, 'output_tokens_per_second', digits=0)}"
            f" | {f'{ratio:.2f}×' if ratio is not None else '–'}"
            f" | {_cell(row, 'pairs_per_second', digits=1)}"
            f" | {_cell(row, 'documents_per_second', digits=2)} | {latency} | {first}"
            f" | {_cell(row, 'chunk_first_pair_share_p50', digits=2)}"
            f" | {_cell(row, 'server_cpu_seconds', digits=1)}"
            f" | {_cell(row, 'server_main_cpu_seconds', digits=1)}"
            f" | {_cell(row, 'server_peak_rss_bytes', scale=1 / 2**20, digits=0)}"
            f" | {_cell(row, 'client_cpu_seconds', digits=1)} | {row['chunks_failed']} |")
    for arm, what in BIDI_VARIANTS.items():
        compared = [r for r in result["summary"]
                    if r["arm"] == arm and r.get("throughput_vs_bidi") is not None]
        if compared:
            lines.append("")
            lines.append(f"`{arm}` ({what}) against `{BIDI}`, output tokens/s: " + ", ".join(
                f"{r['throughput_vs_bidi']:.3f}× at {r['concurrency']} in flight"
                for r in compared) + ".")
    return "\n".join(lines) + "\n"


def write_markdown(result: dict[str, Any], path: Path) -> str:
    table = markdown(result)
    path.write_text(table)
    return table


def write_plots(result: dict[str, Any], prefix: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["summary"]
    paths = []
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for arm in _ARM_ORDER:
        points = [(r["concurrency"], r["output_tokens_per_second"]) for r in rows
                  if r["arm"] == arm and r["concurrency"] is not None]
        if points:
            xs = [p[0] for p in points]
            axes.errorbar(xs, [p[1]["median"] for p in points],
                          yerr=[[p[1]["median"] - p[1]["min"] for p in points],
                                [p[1]["max"] - p[1]["median"] for p in points]],
                          marker="o", capsize=3, label=arm)
        batch = [r for r in rows if r["arm"] == arm and r["concurrency"] is None]
        if batch:
            axes.axhline(batch[0]["output_tokens_per_second"]["median"], linestyle="--",
                         color="grey", label=f"{arm} (batches of {result['batch_size']})")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("documents in flight")
    axes.set_ylabel("output tokens / s (median, min–max)")
    axes.set_title(f"Throughput, workload {result['workload']['name']}")
    axes.legend(fontsize=8)
    figure.tight_layout()
    paths.append(prefix.with_name(prefix.name + "-throughput.png"))
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 4.5))
    samples: dict[str, list[float]] = defaultdict(list)
    top = max((c for c in result["concurrency_levels"]), default=None)
    for run in result["runs"]:
        if run["concurrency"] in (top, None):
            samples[run["arm"]] += run["time_to_first_pair_samples"]
    labels = [a for a in _ARM_ORDER if samples.get(a)]
    if labels:
        axes.boxplot([samples[a] for a in labels], tick_labels=labels)
    axes.set_ylabel("seconds from sending a document to its first pair")
    axes.set_title(f"Time to first pair at {top} documents in flight (all repeats)")
    axes.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    paths.append(prefix.with_name(prefix.name + "-first-pair.png"))
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)
    return paths
