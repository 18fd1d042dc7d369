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


def debian_program(command: str, packages: list[str]) -> UnpackedProgram:
    """`command` from PATH, else from `packages` (the program's and the libraries it needs
    that a bare machine lacks) unpacked into .cache/debian/<command>/."""
    found = shutil.which(command)
    if found is not None:
        return UnpackedProgram(Path(found))
    home = CACHE / command
    root = home / "root"
    if not root.exists():
        home.mkdir(parents=True, exist_ok=True)
        debs = sorted(home.glob("*.deb")) or _download(packages, home)
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
    libraries = sorted(str(d) for d in root.glob("usr/lib/*-linux-gnu") if d.is_dir())
    program = UnpackedProgram(root / "usr" / "bin" / command, ":".join(libraries))
    check = _run([str(program.binary), "--version"], cwd=home, timeout=30, env=program.env())
    assert check.returncode == 0, f"{program.binary} --version failed:\n{check.stderr}"
    return program
