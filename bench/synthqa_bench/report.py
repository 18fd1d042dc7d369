"""Summaries of a benchmark run: medians with min and max per arm and concurrency, ratios
against `inprocess` from the same run, a Markdown table and PNG plots."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

FIGURES = ("output_tokens_per_second", "pairs_per_second", "documents_per_second",
           "chunk_latency_p50", "chunk_latency_p90", "chunk_latency_p99", "chunks_in_flight_mean",
           "time_to_first_pair_p50", "time_to_first_pair_p99", "chunk_first_pair_share_p50",
           "wall_seconds",
           "server_cpu_seconds", "server_main_cpu_seconds", "server_loop_cpu_seconds",
           "server_peak_rss_bytes", "client_cpu_seconds")
FLOOR = "inprocess"
REPLAY = "replay"
CEILING_FIGURES = ("output_tokens_per_second", "records_per_second", "events_per_second",
                   "front_end_cpu_us_per_token", "front_end_loop_cpu_us_per_token",
                   "client_cpu_us_per_token",
                   "one_core_ceiling_tokens_per_second", "wall_seconds")


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, int | None], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        if run["arm"] == REPLAY:
            continue  # no engine: its figures are the ceiling's, not a throughput to compare
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


def _us_per_token(row: dict[str, Any] | None,
                  cpu: str = "server_main_cpu_seconds") -> float | None:
    """A real-engine arm's front-end CPU per output token, in µs (medians): its process's, or
    with `cpu="server_loop_cpu_seconds"` its main thread's."""
    if not row or not row.get(cpu) or not row["output_tokens_per_second"]:
        return None
    tokens = row["output_tokens_per_second"]["median"] * row["wall_seconds"]["median"]
    return row[cpu]["median"] / tokens * 1e6 if tokens else None


def summarize_ceiling(runs: list[dict[str, Any]],
                      summary: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The replay arm per feature, beside the front-end CPU per token of the real-engine arms
    at their highest concurrency in the same run: `inprocess` is vLLM's own front end (AsyncLLM
    and its output processor, no synthqa), `synthqa-bidi` is both together."""
    replayed = [run for run in runs if run["arm"] == REPLAY]
    if not replayed:
        return None
    by_feature: dict[tuple[str, int, bool], list[dict[str, Any]]] = defaultdict(list)
    for run in replayed:
        by_feature[(run["feature"], run.get("front_ends", 1), run.get("baseline", False))
                   ].append(run)
    features = []
    for (feature, front_ends, baseline), group in by_feature.items():
        row: dict[str, Any] = {
            "feature": feature, "front_ends": front_ends, "baseline": baseline,
            "concurrency": group[0]["concurrency"], "runs": len(group),
            "records_repeated": sum(r["records_repeated"] for r in group),
            "chunks_ended_twice": sum(r["chunks_ended_twice"] for r in group),
            "chunks_unended": sum(r["chunks_unended"] for r in group),
            "chunks_failed": sum(r["chunks_failed"] for r in group)}
        for name in CEILING_FIGURES:
            row[name] = _spread([r[name] for r in group if r.get(name) is not None])
        features.append(row)
    top = max((r["concurrency"] for r in summary if r["concurrency"] is not None), default=None)
    at_top = {r["arm"]: r for r in summary if r["concurrency"] == top}
    vllm = _us_per_token(at_top.get(FLOOR))
    vllm_loop = _us_per_token(at_top.get(FLOOR), "server_loop_cpu_seconds")
    single = {r["feature"]: r for r in features if r["front_ends"] == 1 and not r["baseline"]}
    baselines = {r["feature"]: r for r in features if r["baseline"]}
    for row in features:
        own = row["front_end_cpu_us_per_token"]
        row["vs_vllm_front_end"] = own["median"] / vllm if own and vllm else None
        own_loop = row.get("front_end_loop_cpu_us_per_token")
        row["loop_vs_vllm_loop"] = (own_loop["median"] / vllm_loop
                                    if own_loop and vllm_loop else None)
        one = single.get(row["feature"])
        row["throughput_vs_one_front_end"] = (
            row["output_tokens_per_second"]["median"] / one["output_tokens_per_second"]["median"]
            if one and row["front_ends"] != 1 else None)
        base = baselines.get(row["feature"]) if row is single.get(row["feature"]) else None
        for figure in ("front_end_cpu_us_per_token", "front_end_loop_cpu_us_per_token"):
            row[f"{figure}_vs_baseline"] = (
                row[figure]["median"] / base[figure]["median"]
                if base and row.get(figure) and base.get(figure) else None)
    return {"features": features, "real_engine_concurrency": top,
            "vllm_front_end_us_per_token": vllm,
            "vllm_front_end_loop_us_per_token": vllm_loop,
            "synthqa_on_engine_front_end_us_per_token": _us_per_token(at_top.get(BIDI))}


def ceiling_markdown(ceiling: dict[str, Any]) -> str:
    vllm = ceiling["vllm_front_end_us_per_token"]
    both = ceiling["synthqa_on_engine_front_end_us_per_token"]
    lines = [
        "",
        "Ceiling with the model taken out (`replay` arm: the real server on recorded engine "
        "outputs, the async client reading). Front-end CPU is the server's main process; "
        "its loop thread is that process's main thread alone (the event loop), against the "
        "same thread of vLLM's; the one-core ceiling is output tokens per CPU-second of the "
        "process.",
        "",
        "| feature | front-end processes | docs in flight | output tok/s | × one process "
        "| records/s | events/s | front-end CPU µs/token | × vLLM's front end "
        "| loop thread µs/token | × vLLM's loop thread "
        "| client CPU µs/token | one-core ceiling tok/s | failed chunks "
        "| records twice / chunks twice / unended |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ceiling["features"]:
        ratio = row["vs_vllm_front_end"]
        loop_ratio = row.get("loop_vs_vllm_loop")
        scaled = row.get("throughput_vs_one_front_end")
        lines.append(
            f"| {row['feature']} | {row.get('front_ends', 1)}"
            f"{' (baseline)' if row.get('baseline') else ''} | {row['concurrency']}"
            f" | {_cell(row, 'output_tokens_per_second', digits=0)}"
            f" | {f'{scaled:.2f}×' if scaled is not None else '–'}"
            f" | {_cell(row, 'records_per_second', digits=0)}"
            f" | {_cell(row, 'events_per_second', digits=0)}"
            f" | {_cell(row, 'front_end_cpu_us_per_token', digits=1)}"
            f" | {f'{ratio:.2f}×' if ratio is not None else '–'}"
            f" | {_cell(row, 'front_end_loop_cpu_us_per_token', digits=1)}"
            f" | {f'{loop_ratio:.2f}×' if loop_ratio is not None else '–'}"
            f" | {_cell(row, 'client_cpu_us_per_token', digits=1)}"
            f" | {_cell(row, 'one_core_ceiling_tokens_per_second', digits=0)}"
            f" | {row['chunks_failed']}"
            f" | {row['records_repeated']} / {row['chunks_ended_twice']} / "
            f"{row['chunks_unended']} |")
    vllm_loop = ceiling.get("vllm_front_end_loop_us_per_token")
    if vllm is not None or both is not None:
        lines.append("")
        lines.append(
            f"Front-end process CPU per output token on the real engine at "
            f"{ceiling['real_engine_concurrency']} in flight: vLLM's own (`inprocess`) "
            + (f"{vllm:.1f} µs" if vllm is not None else "not measured")
            + (f" ({vllm_loop:.1f} µs on its loop thread)" if vllm_loop is not None else "")
            + ", synthqa with vLLM in it (`synthqa-bidi`) "
            + (f"{both:.1f} µs" if both is not None else "not measured") + ".")
    compared = [r for r in ceiling["features"]
                if r.get("front_end_cpu_us_per_token_vs_baseline") is not None]
    if compared:
        lines += ["", "This checkout's replay server against the baseline checkout's, same run "
                  "(medians): front-end CPU per token, process and loop thread.", "",
                  "| feature | process × baseline | loop thread × baseline |", "|---|---|---|"]
        for row in compared:
            loop = row.get("front_end_loop_cpu_us_per_token_vs_baseline")
            lines.append(f"| {row['feature']} | "
                         f"{row['front_end_cpu_us_per_token_vs_baseline']:.2f}× | "
                         + (f"{loop:.2f}×" if loop is not None else "–") + " |")
    return "\n".join(lines) + "\n"


_ARM_ORDER = ("inprocess", "inprocess-deltas", "synthqa-bidi", "synthqa-traced",
              "synthqa-baseline", "synthqa-unary", "vllm-openai", "batch-wait")
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
    warm_runs = result.get("warm_runs") or 0
    warmed = (f", each after {warm_runs} unmeasured run{'s' if warm_runs > 1 else ''} of the "
              "workload on its freshly started engine" if warm_runs else "")
    lines = [
        f"Workload `{workload['name']}`: {workload['documents']} documents, "
        f"{workload['chunks']} chunks, options {workload['options']}{mix}; engine flags "
        f"`{' '.join(result['engine_args'])}`{placement}; {result['repeats']} repeats"
        f"{warmed}, median (min–max).",
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
    table = "\n".join(lines) + "\n"
    if result.get("ceiling"):
        table += ceiling_markdown(result["ceiling"])
    return table


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
        if run["concurrency"] in (top, None) and run["arm"] != REPLAY:
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
    if result.get("ceiling"):
        paths.append(_ceiling_plot(result["ceiling"],
                                   prefix.with_name(prefix.name + "-ceiling.png")))
    return paths


def _ceiling_plot(ceiling: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    rows = [r for r in ceiling["features"]
            if r["one_core_ceiling_tokens_per_second"] and r.get("front_ends", 1) == 1
            and not r.get("baseline")]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    names = [r["feature"] for r in rows]
    spreads = [r["one_core_ceiling_tokens_per_second"] for r in rows]
    medians = [s["median"] for s in spreads]
    axes.bar(names, medians,
             yerr=[[m - s["min"] for m, s in zip(medians, spreads, strict=True)],
                   [s["max"] - m for m, s in zip(medians, spreads, strict=True)]],
             capsize=3, color="tab:blue", label="synthqa front end, one core")
    measured = [r["output_tokens_per_second"]["median"] for r in rows]
    axes.scatter(names, measured, color="tab:orange", zorder=3,
                 label="output tok/s measured (two cores, client included)")
    axes.set_ylabel("output tokens / s")
    axes.set_title("Ceiling with the model taken out, per feature (median, min–max)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
