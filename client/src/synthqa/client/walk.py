"""The files a command line names: files as given, folders walked recursively in name order,
hidden files and folders left out unless an --include glob names them."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path


def collect_files(paths: Sequence[str | Path], include: Sequence[str] = (),
                  exclude: Sequence[str] = ()) -> list[Path]:
    """Files named directly are always taken (unless excluded); a folder's files are taken
    when they match an include glob (any, when none is given) and no exclude glob. Globs match
    the path below the folder named (`notes/*.md`) or the file's name (`*.pdf`). Hidden files
    and folders (names starting with a dot) are taken only when a glob naming a hidden name
    includes them (`.notes`, `.*.md`)."""
    files: list[Path] = []
    # A hidden file or folder needs a glob that names a hidden one: `*.txt` alone does not
    # bring in .secret.txt.
    hidden_globs = [glob for glob in include if glob.rsplit("/", 1)[-1].startswith(".")]
    for given in map(Path, paths):
        if not given.is_dir():
            if not _matches(given.name, given.name, exclude):
                files.append(given)
            continue
        for folder, folders, names in os.walk(given):
            below = Path(folder).relative_to(given)
            folders.sort()
            folders[:] = [name for name in folders if not name.startswith(".")
                          or _matches((below / name).as_posix(), name, hidden_globs)]
            for name in sorted(names):
                relative = (below / name).as_posix()
                if name.startswith("."):
                    wanted = _matches(relative, name, hidden_globs)
                else:
                    wanted = not include or _matches(relative, name, include)
                if wanted and not _matches(relative, name, exclude):
                    files.append(Path(folder) / name)
    return files


def _matches(relative: str, name: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(relative, glob) or fnmatch.fnmatch(name, glob) for glob in globs)
