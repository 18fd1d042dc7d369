"""`--split-cpus ENGINE:FRONT`: every arm's engine processes on some CPUs, its front end and the
benchmark's clients on the others.

On a small CPU machine vLLM's engine core spins on the core it keeps for itself, which is also
where the front end runs; splitting the CPUs measures what the service costs when it does not
compete with the engine for a core. Every arm is placed the same way, so ratios stay fair."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil


def parse_cpu_list(text: str) -> frozenset[int]:
    """'0,2-3' → {0, 2, 3}."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"{text!r} is not a CPU list like 0,2-3")
        cpus.update(range(int(first), int(last or first) + 1))
    if not cpus:
        raise ValueError(f"{text!r} names no CPU")
    return frozenset(cpus)


@dataclass(frozen=True)
class CpuSplit:
    engine: frozenset[int]
    front: frozenset[int]

    @classmethod
    def parse(cls, text: str, available: set[int] | None = None) -> CpuSplit:
        engine_text, colon, front_text = text.partition(":")
        if not colon:
            raise ValueError(f"{text!r}: expected ENGINE_CPUS:FRONT_CPUS, like 0:1")
        split = cls(parse_cpu_list(engine_text), parse_cpu_list(front_text))
        if split.engine & split.front:
            raise ValueError(f"{text!r}: the engine and the front end share CPUs "
                             f"{sorted(split.engine & split.front)}")
        available = os.sched_getaffinity(0) if available is None else available
        unknown = (split.engine | split.front) - available
        if unknown:
            raise ValueError(f"{text!r}: CPUs {sorted(unknown)} are not available to this "
                             f"process (it has {sorted(available)})")
        return split

    @contextmanager
    def placed(self, front_end_pid: int) -> Iterator[None]:
        """A started server (or in-process engine) placed: its front-end process on the front
        CPUs, every process it started on the engine's; and the benchmark's clients, which run
        in this process, on the front CPUs until the block ends. (Only then: a server started
        from a pinned process would inherit its CPUs.) Threads started later inherit their
        creator's CPUs."""
        root = psutil.Process(front_end_pid)
        _pin_threads(root.pid, self.front)
        for child in root.children(recursive=True):
            _pin_threads(child.pid, self.engine)
        own = frozenset(os.sched_getaffinity(0))
        _pin_threads(os.getpid(), self.front)
        try:
            yield
        finally:
            _pin_threads(os.getpid(), own)

    def describe(self) -> dict[str, list[int]]:
        return {"engine": sorted(self.engine), "front": sorted(self.front)}


def _pin_threads(pid: int, cpus: frozenset[int]) -> None:
    # Per thread: a process's affinity call moves only the thread it names.
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, FileNotFoundError):
            pass  # the thread ended meanwhile
