"""The engine's processes watch their parent. A parent whose main thread has exited while
another of its threads still runs is a zombie ("Zl") and has not let its children go
(getppid() still names it): it is dead all the same. A worker goes with its engine core even
when its own watch cannot run, and leaves no shared memory behind."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import psutil

from synthqa.server.engine.process_group import parent_alive

# The child forks a grandchild, starts a thread that lives on, and ends its main thread alone
# (the exit system call, not exit_group): the child is then a zombie with a live thread. The
# grandchild says whether its parent is alive before and after, and what getppid() says.
CHILD = """
import ctypes, os, platform, threading, time
from synthqa.server.engine.process_group import parent_alive
parent = os.getpid()
if os.fork() == 0:
    print(parent_alive(parent), flush=True)
    time.sleep(0.5)
    print(parent_alive(parent), os.getppid() == parent, flush=True)
    os._exit(0)
threading.Thread(target=time.sleep, args=(3,), daemon=False).start()
time.sleep(0.1)
SYS_EXIT = {"x86_64": 60, "aarch64": 93}[platform.machine()]
ctypes.CDLL(None, use_errno=True).syscall(SYS_EXIT, 0)
"""


def test_a_running_parent_is_alive_and_a_zombie_one_is_not() -> None:
    assert parent_alive(os.getppid())
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["True"]
        # Dead to the watch, though still the grandchild's parent.
        assert child.stdout.readline().split() == ["False", "True"]
    finally:
        child.wait(10)


# A server starts an engine core, which starts a worker. The worker maps shared memory and
# then holds the GIL, as vLLM's worker does in gc.collect() once it sees its core die: its own
# Python watch cannot run.
SERVER = """
import os, subprocess, sys
os.environ["SYNTHQA_SERVER_PID"] = str(os.getpid())
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]]).wait()
"""
CORE = """
import subprocess, sys, time
from synthqa.server.engine.process_group import prepare_engine_process
prepare_engine_process()
subprocess.Popen([sys.executable, "-c", sys.argv[1]])
time.sleep(600)
"""
WORKER = """
import mmap, os
from synthqa.server.engine.process_group import prepare_engine_process
prepare_engine_process()
path = f"/dev/shm/synthqa-test-worker-{os.getpid()}"
descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
os.ftruncate(descriptor, 4096)
mapped = mmap.mmap(descriptor, 4096)
print(os.getpid(), path, flush=True)
7 ** (10 ** 8)  # minutes in C with the GIL held
"""


def test_a_worker_whose_gil_is_held_dies_with_its_core_and_leaves_no_shared_memory() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER, CORE, WORKER],
                              stdout=subprocess.PIPE, text=True)
    worker_pid, path = 0, ""
    try:
        assert server.stdout is not None
        pid_text, path = server.stdout.readline().split()
        worker_pid = int(pid_text)
        worker = psutil.Process(worker_pid)
        time.sleep(0.5)  # the worker is in its long computation
        server.kill()
        server.wait(10)
        deadline = time.monotonic() + 10
        while _running(worker):
            assert time.monotonic() < deadline, "the worker outlived its engine core"
            time.sleep(0.1)
        assert not os.path.exists(path), "the worker's shared memory was left in /dev/shm"
    finally:
        if worker_pid:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(worker_pid).kill()
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
