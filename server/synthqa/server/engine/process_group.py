"""Keeps the engine's processes out of the server's process group, so that Ctrl-C in a
terminal or a signal to the whole group (systemd, `kill -- -PGID`) reaches only the server,
which drains its calls and then stops the engine itself.

vLLM runs its `vllm.general_plugins` entry points in every engine core and worker process
before they build the engine; this module is one. It must stay cheap to import and must do
nothing unless a synthqa server started the engine: any vLLM in the same environment (a
`vllm serve`, a notebook) loads it too."""

from __future__ import annotations

import os

# Set by the server before it starts the engine; children inherit it.
SERVER_PID_ENV = "SYNTHQA_SERVER_PID"


def mark_server_process() -> None:
    """Called by the server before it starts an engine."""
    os.environ[SERVER_PID_ENV] = str(os.getpid())


def leave_server_process_group() -> None:
    """The vLLM plugin: in a process the server started, lead a process group of its own.
    Workers the engine core starts afterwards join its group, not the server's."""
    server_pid = os.environ.get(SERVER_PID_ENV)
    if server_pid is None or server_pid == str(os.getpid()):
        return
    try:
        in_server_group = os.getpgrp() == os.getpgid(int(server_pid))
    except (ProcessLookupError, ValueError):
        return
    # A worker of an engine core that already moved is in the core's group: leave it there.
    if in_server_group:
        os.setpgid(0, 0)
