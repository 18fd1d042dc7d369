"""Programs from Debian's packages for the tests, without installing anything system-wide.

When a program is not on PATH, its package and the libraries it needs are fetched with
`apt-get download` and unpacked with `dpkg-deb -x` under .cache/debian/<name>/ (gitignored): no
postinst runs and no service starts. Root is not needed unless the package lists are missing,
as on a fresh image: then `apt-get update` runs once and the download is retried.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO

CACHE = REPO / ".cache" / "debian"


@dataclass(frozen=True)
class UnpackedProgram:
    binary: Path
    # LD_LIBRARY_PATH for libraries that came unpacked with it ("" when none did).
    library_path: str = ""

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.library_path:
            env["LD_LIBRARY_PATH"] = ":".join(
                filter(None, [self.library_path, env.get("LD_LIBRARY_PATH", "")]))
        return env


def _run(args: list[str], cwd: Path, timeout: float = 600,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def _download(packages: list[str], into: Path) -> list[Path]:
    result = _run(["apt-get", "download", *packages], cwd=into)
    if result.returncode != 0:
        update = _run(["apt-get", "update"], cwd=into)
        assert update.returncode == 0, f"apt-get update failed:\n{update.stderr}"
        result = _run(["apt-get", "download", *packages], cwd=into)
    assert result.returncode == 0, f"apt-get download {packages} failed:\n{result.stderr}"
    debs = sorted(into.glob("*.deb"))
    assert len(debs) >= len(packages), f"apt-get download {packages} left only {debs}"
    return debs


def missing_here(package: str) -> list[str]:
    """`package` and every package apt would install with it on this machine (no
    recommends): the libraries a bare machine lacks, whatever this one already has. A
    simulation (`apt-get -s`), which needs no root."""
    args = ["apt-get", "-s", "install", "--no-install-recommends", package]
    result = _run(args, cwd=Path(tempfile.gettempdir()))
    if result.returncode != 0:
        update = _run(["apt-get", "update"], cwd=Path(tempfile.gettempdir()))
        assert update.returncode == 0, f"apt-get update failed:\n{update.stderr}"
        result = _run(args, cwd=Path(tempfile.gettempdir()))
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stderr}"
    return [line.split()[1] for line in result.stdout.splitlines() if line.startswith("Inst ")]


def _library_path(root: Path) -> str:
    """The unpacked library folders, and those below them that hold shared objects (a
    library's private ones, as pulseaudio/libpulsecommon)."""
    folders = [d for d in sorted(root.glob("usr/lib/*-linux-gnu")) if d.is_dir()]
    folders += [d for top in list(folders) for d in sorted(top.iterdir())
                if d.is_dir() and any(d.glob("*.so*"))]
    return ":".join(str(d) for d in folders)


def debian_program(command: str, packages: list[str] | Callable[[], list[str]],
                   binary: str | None = None) -> UnpackedProgram:
    """`command` from PATH, else from `packages` (the program's and the libraries it needs
    that a bare machine lacks; a function is asked only when they must be downloaded)
    unpacked into .cache/debian/<command>/. `binary`: the program's path in the package
    when it is not usr/bin/<command>."""
    found = shutil.which(command)
    if found is not None:
        return UnpackedProgram(Path(found))
    home = CACHE / command
    root = home / "root"
    if not root.exists():
        home.mkdir(parents=True, exist_ok=True)
        debs = sorted(home.glob("*.deb")) or _download(
            packages() if callable(packages) else packages, home)
        # Unpack beside the target and rename into place, so an interrupted or concurrent run
        # never leaves a half-extracted tree that looks complete.
        with tempfile.TemporaryDirectory(dir=home) as tmp:
            unpacked = Path(tmp) / "root"
            for deb in debs:
                result = _run(["dpkg-deb", "-x", str(deb), str(unpacked)], cwd=home)
                assert result.returncode == 0, f"dpkg-deb -x {deb} failed:\n{result.stderr}"
            try:
                unpacked.rename(root)
            except OSError:
                pass  # another process got there first
    program = UnpackedProgram(root / (binary or f"usr/bin/{command}"), _library_path(root))
    check = _run([str(program.binary), "--version"], cwd=home, timeout=30, env=program.env())
    assert check.returncode == 0, f"{program.binary} --version failed:\n{check.stderr}"
    return program
