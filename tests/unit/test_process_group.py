"""The engine's processes watch their parent. A parent whose main thread has exited while
another of its threads still runs is a zombie ("Zl") and has not let its children go
(getppid() still names it): it is dead all the same."""

from __future__ import annotations

import os
import subprocess
import sys

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
