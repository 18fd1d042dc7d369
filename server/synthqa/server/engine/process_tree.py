"""Makes sure an engine leaves no process, shared memory or semaphore behind when it is
replaced or the server exits."""

from __future__ import annotations

import contextlib
import logging
from _multiprocessing import sem_unlink  # type: ignore[import-not-found]
from collections.abc import Iterable
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

_SHARED_MEMORY_DIR = Path("/dev/shm")


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def terminate(processes: Iterable[psutil.Process], timeout: float = 2.0) -> int:
    """Terminate the processes that still run, then kill the ones that did not exit within
    `timeout` (0: kill at once). Returns how many had to be stopped."""
    running = [p for p in processes if _running(p) and not _is_resource_tracker(p)]
    if timeout <= 0:
        for process in running:
            with _gone_is_fine():
                process.kill()
        psutil.wait_procs(running, timeout=2.0)
        return len(running)
    for process in running:
        with _gone_is_fine():
            process.terminate()
    _, alive = psutil.wait_procs(running, timeout=timeout)
    for process in alive:
        log.warning("killing child process %d that ignored SIGTERM", process.pid)
        with _gone_is_fine():
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return len(running)


def terminate_children(pid: int) -> int:
    """Every descendant of `pid` (an engine's own processes are stopped by the engine)."""
    return terminate(descendants(pid))


def ipc_names() -> set[str]:
    """multiprocessing's shared-memory segments and semaphores (Linux lists them here)."""
    try:
        return {path.name for pattern in ("psm_*", "sem.mp-*")
                for path in _SHARED_MEMORY_DIR.glob(pattern)}
    except OSError:
        return set()


def remove_ipc(names: Iterable[str]) -> None:
    """Remove what killed processes left, and tell multiprocessing's resource tracker, which
    would otherwise warn about leaked objects when the server exits."""
    for name in names:
        if not (_SHARED_MEMORY_DIR / name).exists():
            continue  # removed by its owner
        if name.startswith("sem."):
            semaphore = "/" + name.removeprefix("sem.")
            with contextlib.suppress(OSError):
                sem_unlink(semaphore)
                resource_tracker.unregister(semaphore, "semaphore")
            continue
        try:
            segment = SharedMemory(name=name)  # attaching registers it; unlink unregisters
        except OSError:
            continue
        segment.close()
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()


def _running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


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
