"""`--split-cpus`: a started server's front end on some CPUs, the processes it started on the
others, the benchmark's own threads with the front end only while the server is measured."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from ..paths import REPO

sys.path.insert(0, str(REPO / "bench"))

from synthqa_bench.placement import CpuSplit, parse_cpu_list  # noqa: E402

# A parent that starts a child which starts a thread: the shape of a server and its engine.
TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); "
    "print('up', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(60)
"""


def test_cpu_lists_parse_as_linux_writes_them() -> None:
    assert parse_cpu_list("0") == {0}
    assert parse_cpu_list("0,2-4") == {0, 2, 3, 4}
    for bad in ("", "a", "1-", "0,,1"):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)


def test_a_split_must_name_two_disjoint_sets_of_available_cpus() -> None:
    assert CpuSplit.parse("0:1-2", available={0, 1, 2}) == CpuSplit(frozenset({0}),
                                                                    frozenset({1, 2}))
    with pytest.raises(ValueError, match="ENGINE_CPUS:FRONT_CPUS"):
        CpuSplit.parse("0", available={0, 1})
    with pytest.raises(ValueError, match=r"share CPUs \[1\]"):
        CpuSplit.parse("0-1:1", available={0, 1})
    with pytest.raises(ValueError, match=r"CPUs \[7\] are not available"):
        CpuSplit.parse("0:7", available={0, 1})


def test_placing_a_tree_pins_every_thread_and_releases_this_process_after() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("a split needs two CPUs; this machine gives the test one")
    split = CpuSplit(frozenset({cpus[0]}), frozenset({cpus[1]}))
    own = os.sched_getaffinity(0)
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        with split.placed(parent.pid):
            assert _affinities(parent.pid) == {cpus[1]}
            assert _affinities(child_pid) == {cpus[0]}  # both of the child's threads
            assert _affinities(os.getpid()) == {cpus[1]}
        assert _affinities(os.getpid()) == own
    finally:
        if child_pid is not None:
            os.kill(child_pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def _affinities(pid: int) -> set[int]:
    """The CPUs a process's threads are on; they must all be on the same ones."""
    found: set[frozenset[int]] = {frozenset(os.sched_getaffinity(int(task)))
                                  for task in os.listdir(f"/proc/{pid}/task")}
    assert len(found) == 1, f"threads of {pid} are on different CPUs: {found}"
    return set(next(iter(found)))
