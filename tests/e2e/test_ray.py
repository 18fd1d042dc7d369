"""synthqa.ray end to end: a local Ray (2 CPUs) and two replicas on the tiny model. A folder of
a few hundred mixed small documents, read with ray.data.read_binary_files, becomes Parquet
shards holding the records the CLI makes of the same seeded inputs (the same count per
document and chunk); a second run finds every shard done; a Ray worker killed mid-job and,
separately, a replica SIGKILLed mid-job still end with every chunk done once and no record
twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from synthqa.client.export import read_lines

from .. import made_files
from ..paths import REPO
from .helpers import SAMPLE, jsonl
from .serverproc import ServerProcess, free_port, serving_until_killed

ray = pytest.importorskip("ray", reason="the ray extra is installed by make setup")
from synthqa.ray import generate_dataset  # noqa: E402

OPTIONS = {"num_pairs": 1, "seed": 7, "max_generation_tokens": 64, "max_chunk_tokens": 256}
NUM_SHARDS = 8
TEXT_DOCUMENTS = 160
OFFICE_DOCUMENTS = 10  # of each: PDF, Word, web page, deck


def replica(name: str) -> ServerProcess:
    port = free_port()
    return ServerProcess(port=port, log_path=REPO / "out" / f"test-ray-replica-{name}-{port}.log",
                         extra_args=["--max-in-flight-chunks-per-call", "8"])


@pytest.fixture(scope="module")
def second(tiny_model_path: str) -> Iterator[ServerProcess]:
    """The other replica; the last test kills it."""
    yield from serving_until_killed(replica("b"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    text = SAMPLE * 2
    for n in range(TEXT_DOCUMENTS):
        start = (n * 211) % len(SAMPLE)
        (folder / "notes" / f"n{n // 40}").mkdir(parents=True, exist_ok=True)
        (folder / "notes" / f"n{n // 40}" / f"note{n:03}.txt").write_text(
            text[start:start + 500 + (n % 5) * 150], encoding="utf-8")
    for n in range(OFFICE_DOCUMENTS):
        words = SAMPLE[n * 300:n * 300 + 600]
        made_files.pdf(folder / f"report{n}.pdf", [words[:300], words[300:]])
        made_files.docx(folder / f"memo{n}.docx", [("h1", f"Memo {n}"), ("p", words)])
        made_files.html(folder / f"page{n}.html", f"Page {n}", [(f"Part {n}", [words])])
        made_files.pptx(folder / f"deck{n}.pptx", [(f"Slide {n}", words[:200], words[200:300])])
    return folder


def cli_flags() -> list[str]:
    return [flag for name, value in OPTIONS.items()
            for flag in (f"--{name.replace('_', '-')}", str(value))]


@pytest.fixture(scope="module")
def cli_counts(server: ServerProcess, corpus: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Counter[tuple[str, int]]:
    """Records per (document, chunk) when the CLI runs on the same folder and options."""
    out = tmp_path_factory.mktemp("cli") / "run.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "synthqa.client.cli", "--target", server.target, "generate",
         str(corpus), "--out", str(out), "--no-progress", *cli_flags()],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return per_chunk(jsonl(out))


def per_chunk(lines: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
    return Counter((line["document_id"], line["chunk_index"]) for line in lines)


def assert_every_record_once(out: Path, expected: Counter[tuple[str, int]]) -> None:
    lines = list(read_lines(out))
    records = Counter((line["document_id"], line["chunk_index"], line["pass_index"],
                       line["record_index"]) for line in lines)
    assert max(records.values()) == 1, "a record was written twice"
    assert per_chunk(lines) == expected
    assert not [path for path in out.iterdir() if path.name.startswith(".")], \
        "a partial shard file was left"


def run_job(corpus: Path, out: Path, target: list[str]) -> list[dict[str, Any]]:
    return generate_dataset(ray.data.read_binary_files(str(corpus), include_paths=True),
                            root=str(corpus), target=target, out=out, options=OPTIONS,
                            num_shards=NUM_SHARDS, concurrency=2, extract_num_cpus=0.5,
                            retries=5, max_shard_retries=10)


def test_ray_shards_hold_what_the_cli_makes_and_a_second_run_skips_them(
    server: ServerProcess, second: ServerProcess, local_ray: None, corpus: Path,
    cli_counts: Counter[tuple[str, int]], tmp_path: Path,
) -> None:
    out = tmp_path / "shards"
    summaries = run_job(corpus, out, [server.target, second.target])

    assert len(cli_counts) >= TEXT_DOCUMENTS + 4 * OFFICE_DOCUMENTS
    assert_every_record_once(out, cli_counts)
    assert sorted(path.name for path in out.iterdir()) == sorted(
        f"{summary['key']}.parquet" for summary in summaries)
    assert sum(summary["records"] for summary in summaries) == sum(cli_counts.values())
    pages = {page for line in read_lines(out) if line["document_id"] == "report0.pdf"
             for page in line["source"]["pages"]}
    assert pages and pages <= {1, 2}
    written = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}

    again = run_job(corpus, out, [server.target, second.target])
    assert all(summary["skipped_existing"] for summary in again)
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == written


def shard_files(out: Path) -> int:
    return sum(1 for path in out.glob("*.parquet")) if out.exists() else 0


def killed_mid_job(corpus: Path, out: Path, target: list[str],
                   kill: Callable[[], object]) -> None:
    """Runs the job, and `kill()` once its first shard is written and before its last."""
    failure: list[BaseException] = []

    def job() -> None:
        try:
            run_job(corpus, out, target)
        except BaseException as error:  # noqa: BLE001 (reraised in the test's thread)
            failure.append(error)

    runner = threading.Thread(target=job, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 300
        while shard_files(out) == 0 and runner.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner.is_alive() and shard_files(out) < NUM_SHARDS, \
            f"the job ended before the kill: {failure}"
        kill()
    finally:
        # Never leave the job running past the test: a Ray driver whose cluster is shut down
        # under a running job exits the whole process.
        runner.join(600)
    assert not runner.is_alive(), "the job did not end"
    assert not failure, failure


def generating_workers() -> list[psutil.Process]:
    """Ray's worker processes that hold a GenerateShards actor."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if cmdline.startswith("ray::") and "GenerateShards" in cmdline:
            found.append(process)
    return found


def test_a_ray_worker_killed_mid_job_leaves_every_record_once(
    server: ServerProcess, second: ServerProcess, local_ray: None, corpus: Path,
    cli_counts: Counter[tuple[str, int]], tmp_path: Path,
) -> None:
    out = tmp_path / "shards"
    killed: list[int] = []

    def kill_a_worker() -> None:
        workers = generating_workers()
        assert workers, "no GenerateShards worker found: " + ", ".join(
            " ".join(p.info["cmdline"] or [])[:80] for p in psutil.process_iter(["cmdline"])
            if (p.info["cmdline"] or [""])[0].startswith("ray::"))
        os.kill(workers[0].pid, signal.SIGKILL)
        killed.append(workers[0].pid)

    killed_mid_job(corpus, out, [server.target, second.target], kill_a_worker)
    assert killed
    assert_every_record_once(out, cli_counts)


def test_a_replica_killed_mid_job_leaves_every_record_once(
    server: ServerProcess, second: ServerProcess, local_ray: None, corpus: Path,
    cli_counts: Counter[tuple[str, int]], tmp_path: Path,
) -> None:
    """Last of the module: the second replica does not come back."""
    out = tmp_path / "shards"
    assert second.process is not None
    killed_mid_job(corpus, out, [server.target, second.target],
                   lambda: os.killpg(second.process.pid, signal.SIGKILL))
    assert second.process.wait(30) == -signal.SIGKILL
    assert_every_record_once(out, cli_counts)
