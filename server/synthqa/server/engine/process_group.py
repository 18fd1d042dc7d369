"""Prepares the engine's own processes: out of the server's process group, and gone when their
parent is.

Out of the group: Ctrl-C in a terminal or a signal to the whole group (`kill -- -PGID`, a
closing terminal) then reaches only the server, which drains its calls and then stops the
engine itself. Gone with their parent: out of the group, a group signal no longer ends them,
so an engine whose server was killed outright (or a worker whose engine core was) must notice
on its own and exit instead of lingering.

vLLM runs its `vllm.general_plugins` entry points in every engine core and worker process
before they build the engine; `prepare_engine_process` is one. It must stay cheap to import and
must do nothing unless a synthqa server started the engine: any vLLM in the same environment
(a `vllm serve`, a notebook) loads it too."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from pathlib import Path

# Set by the server before it starts an engine; children inherit it.
SERVER_PID_ENV = "SYNTHQA_SERVER_PID"
PARENT_CHECK_SECONDS = 1.0


def mark_server_process() -> None:
    """Called by the server before it starts an engine."""
    os.environ[SERVER_PID_ENV] = str(os.getpid())


def prepare_engine_process() -> None:
    """The vLLM plugin entry point."""
    server_pid = os.environ.get(SERVER_PID_ENV)
    if server_pid is None or server_pid == str(os.getpid()):
        return
    try:
        in_server_group = os.getpgrp() == os.getpgid(int(server_pid))
    except (ProcessLookupError, ValueError):
        return
    # Workers the engine core starts afterwards join the core's group: leave them there.
    if in_server_group:
        os.setpgid(0, 0)
    parent = os.getppid()
    if str(parent) != server_pid:
        _killed_with_parent(parent)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True,
                     name="synthqa-parent-watch").start()


_PR_SET_PDEATHSIG = 1


def _killed_with_parent(parent: int) -> None:
    """A worker is killed by the kernel when its engine core exits. Its own watch is not
    enough: vLLM's worker notices the core's death too and starts a shutdown that holds the
    GIL in gc.collect() for a minute or more, while its threads spin on the cores the server's
    replacement needs (seen with py-spy). The kernel sends the signal when the thread that
    started the worker exits; vLLM's core starts its workers from its main thread."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return  # the Python watch still stands
    if os.getppid() != parent:  # the core died before the signal was asked for
        os._exit(1)


def _exit_with_parent(parent: int) -> None:
    while parent_alive(parent):
        time.sleep(PARENT_CHECK_SECONDS)
    # A server killed outright (SIGKILL of its group, the OOM killer) cleans nothing up, and
    # os._exit runs no finalizer: the shared memory and semaphores this engine maps (vLLM's
    # message queues, 160 MiB and more) would stay in /dev/shm until reboot. Nothing else can
    # use them now. A core removes its workers' too: they die with it, before their own watch
    # could.
    remove_mapped_shared_memory(*_maps_of_self_and_children())
    os._exit(1)


def _maps_of_self_and_children() -> list[str]:
    maps = ["/proc/self/maps"]
    for children in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            maps.extend(f"/proc/{int(pid)}/maps" for pid in children.read_text().split())
    return maps


def parent_alive(parent: int) -> bool:
    """Whether `parent` is still this process's parent and running. When it dies, this
    process is re-parented and getppid() changes, but only once every thread of the parent
    has exited: a parent whose main thread is gone while another thread lingers is a zombie
    that still holds its children (a worker outlived its dead engine core by over a minute on
    a loaded machine)."""
    if os.getppid() != parent:
        return False
    try:
        with open(f"/proc/{parent}/stat", "rb") as stat_file:
            stat = stat_file.read()
    except OSError:
        return False
    # pid (command) state ...: the command may hold spaces and parentheses; the state follows
    # the last ')'.
    state = stat[stat.rindex(b")") + 2:][:1]
    return state not in (b"Z", b"X")


SHARED_MEMORY_DIR = "/dev/shm"


def remove_mapped_shared_memory(*maps: str) -> list[str]:
    """Unlink the /dev/shm files mapped by the processes whose maps are given (this process by
    default); returns their names. Found by inode: a semaphore is mapped under the temporary
    name it was created with, then renamed."""
    inodes: set[int] = set()
    for process_maps in maps or ("/proc/self/maps",):
        inodes |= mapped_shared_memory_inodes(process_maps)
    removed: list[str] = []
    try:
        entries = list(os.scandir(SHARED_MEMORY_DIR))
    except OSError:
        return removed
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.inode() in inodes:
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def mapped_shared_memory_inodes(maps: str = "/proc/self/maps") -> set[int]:
    found = set()
    try:
        with open(maps, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                # address perms offset device inode path
                fields = line.rstrip("\n").split(None, 5)
                if len(fields) == 6 and fields[5].startswith(SHARED_MEMORY_DIR + "/"):
                    found.add(int(fields[4]))
    except (OSError, ValueError):
        pass
    return found
