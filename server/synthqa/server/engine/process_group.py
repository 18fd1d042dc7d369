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

import os
import threading
import time

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
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True,
                     name="synthqa-parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    # When the parent dies, this process is re-parented, and getppid() changes.
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)
