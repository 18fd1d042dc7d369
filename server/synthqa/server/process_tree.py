"""Makes sure the engine leaves no process behind when the server exits."""

from __future__ import annotations

import logging

import psutil

log = logging.getLogger(__name__)


def terminate_children(pid: int, timeout: float = 2.0) -> int:
    """Terminate every descendant of `pid`, then kill the ones that did not exit in time (the
    multiprocessing resource tracker ignores SIGTERM).
    Returns how many had to be stopped."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
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


class _gone_is_fine:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is not None and issubclass(exc_type, psutil.NoSuchProcess)  # type: ignore[arg-type]
