"""Makes sure the engine leaves no process behind when the server exits."""

from __future__ import annotations

import logging

import psutil

log = logging.getLogger(__name__)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def terminate_children(
    pid: int, also: list[psutil.Process] | None = None, timeout: float = 2.0
) -> int:
    """Terminate every descendant of `pid`, and the processes in `also` that still run (an
    engine worker whose engine core was killed is no longer a descendant), then kill the ones
    that did not exit in time. Returns how many had to be stopped."""
    known = {child.pid: child for child in descendants(pid)}
    for process in also or []:
        if process.is_running():
            known.setdefault(process.pid, process)
    children = [child for child in known.values() if not _is_resource_tracker(child)]
    for child in children:
        with _gone_is_fine():
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        log.warning("killing child process %d that ignored SIGTERM", child.pid)
        with _gone_is_fine():
            child.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return len(children)


def _is_resource_tracker(process: psutil.Process) -> bool:
    """multiprocessing's resource tracker ignores SIGTERM and exits on its own when the
    server does (its pipe closes): stopping it would only cost a timeout and a warning."""
    try:
        return any("multiprocessing.resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return False


class _gone_is_fine:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is not None and issubclass(exc_type, psutil.NoSuchProcess)  # type: ignore[arg-type]
