"""The process-tree sampler the benchmark, the fuzz and the soak share: a parent's memory alone
and with its child's, their peaks over a block, and a root that is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from ..paths import REPO

sys.path.insert(0, str(REPO / "bench"))

from synthqa_bench.process_tree import (  # noqa: E402
    ProcessTreeSampler,
    TreeRss,
    settled_rss,
    tree_rss,
)

MIB = 1024 * 1024
# A parent holding 64 MiB that starts a child holding 96 MiB, then says the child's pid.
TREE = """
import subprocess, sys, time
held = b"x" * (64 * 2**20)
child = subprocess.Popen([sys.executable, "-c",
    "import time; held = b'x' * (96 * 2**20); print('up', flush=True); time.sleep(60)"],
    stdout=subprocess.PIPE)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_tree_reads_as_its_root_and_the_sum_with_its_descendants() -> None:
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        root = psutil.Process(parent.pid)
        reading = tree_rss(root)
        child = psutil.Process(child_pid).memory_info().rss
        assert reading.root >= 64 * MIB
        # The two processes' figures read a moment apart: the child's barely moves while idle.
        assert abs(reading.tree - reading.root - child) < 8 * MIB
        level = settled_rss(root, readings=3, spacing=0.01)
        assert level.tree - level.root >= 96 * MIB
        with ProcessTreeSampler(parent.pid, interval=0.05) as sampler:
            time.sleep(0.2)
        assert sampler.peak_root_rss >= 64 * MIB
        assert sampler.peak_tree_rss >= sampler.peak_root_rss + 96 * MIB
        assert sampler.cpu_seconds >= sampler.main_cpu_seconds >= 0
    finally:
        if child_pid is not None:
            os.kill(child_pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
    assert tree_rss(root) == TreeRss(0, 0)  # gone (reaped): nothing, not an error


# Busy on a side thread only, its main thread asleep.
SIDE_THREAD_BUSY = """
import threading, time
def spin():
    while True:
        pass
threading.Thread(target=spin, daemon=True).start()
print("spinning", flush=True)
time.sleep(60)
"""


def test_the_main_threads_cpu_is_told_apart_from_the_other_threads() -> None:
    """The front end's event loop runs on its main thread: a side thread's work (a tokenizer's,
    gRPC's) counts for the process but not for that thread."""
    busy = subprocess.Popen([sys.executable, "-c", SIDE_THREAD_BUSY], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert busy.stdout is not None
        busy.stdout.readline()
        with ProcessTreeSampler(busy.pid, interval=0.05) as sampler:
            time.sleep(0.5)
        assert sampler.main_cpu_seconds >= 0.2
        assert sampler.loop_cpu_seconds < 0.1 * sampler.main_cpu_seconds
    finally:
        busy.kill()
        busy.wait()
