"""The runner's side of the `inprocess` arm: a child process that owns the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# Marks the child's answers: vLLM logs to the same standard output.
ANSWER = "SYNTHQA_BENCH "


class InprocessWorker:
    name = "inprocess"

    def __init__(self, spec: dict[str, Any], log_path: Path) -> None:
        self._spec = spec
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self._log = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synthqa_bench.arm_inprocess", json.dumps(self._spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            process_group=0)  # the benchmark's session, as every arm's server (servers.py)
        self._answer()  # "ready"

    def run(self, concurrency: int, deltas: bool = False) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps({"concurrency": concurrency, "deltas": deltas})
                                 + "\n")
        self.process.stdin.flush()
        figures = json.loads(self._answer())
        assert isinstance(figures, dict)
        return figures

    def _answer(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(ANSWER):
                return line[len(ANSWER):]
            assert self._log is not None
            self._log.write(line)
        raise RuntimeError(f"the inprocess arm exited ({self.process.wait()}); "
                           f"see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # end of runs: the child shuts its engine down
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
