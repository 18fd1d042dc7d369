"""`generate_dataset`: a corpus to shard files on Ray Data, resumable. Files are read
(read_binary_files), extracted into documents with their shards (ExtractDocuments), grouped
by shard, and each shard generated and written whole by GenerateShards, unless its file is
already there."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import ray
from ray.data import ActorPoolStrategy

from synthqa.client.channel import Credentials, Target
from synthqa.client.retry import DEFAULT_RETRIES
from synthqa.client.walk import collect_files

from .extract import ExtractDocuments
from .generate_shards import GenerateShards
from .records import DEFAULT_MAX_IN_FLIGHT, IncompleteDocument, ReplicaUnavailable
from .shard_files import shard_path
from .shards import Options, canonical_options

# Reading a file's bytes and waiting on the server take little CPU: reserving a whole one
# for each would leave a small cluster's CPUs held by waiting workers, and its extraction
# (which does use them) waiting forever.
READ_NUM_CPUS = 0.25
GENERATE_NUM_CPUS = 0.25
EXTRACT_NUM_CPUS = 1.0
EXTRACT_BATCH_SIZE = 16
DEFAULT_SHARD_RETRIES = 3
# What Ray Data matches in a failed task's error to retry it: the class of the error a
# document with failed chunks raises, as Ray formats it ("module.Class: message").
RETRIED_ERRORS = tuple(f"{error.__module__}.{error.__qualname__}"
                       for error in (IncompleteDocument, ReplicaUnavailable))

Inputs: TypeAlias = "ray.data.Dataset | str | os.PathLike[str] | Sequence[str | os.PathLike[str]]"


def generate_dataset(
    ds_or_paths: Inputs,
    *,
    target: Target,
    out: str | os.PathLike[str],
    options: Options | None = None,
    num_shards: int,
    credentials: Credentials | None = None,
    concurrency: int = 1,
    format: str = "parquet",
    root: str | None = None,
    streams: int = 1,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    timeout: float | None = None,
    retries: int = DEFAULT_RETRIES,
    extract_concurrency: int | None = None,
    extract_num_cpus: float = EXTRACT_NUM_CPUS,
    max_shard_retries: int = DEFAULT_SHARD_RETRIES,
) -> list[dict[str, Any]]:
    """Generates the records of every document of the corpus into `out/<key>.<format>`, one
    file per shard, and returns the shards' summaries (key, shard, file, documents, records,
    skipped files with their reasons, skipped_existing), sorted by key. Runs to the end
    before returning: the files are the output, and running it again generates only the
    shards whose files are missing.

    `ds_or_paths`: files and folders (local paths, or URIs with `root`), or a Dataset from
    `ray.data.read_binary_files(..., include_paths=True)` (with `root`). `root`: the folder the
    document ids are relative to; by default the folder given, or the common folder of the
    files given. `concurrency`: generating actors, each with one client making `streams` calls
    at once. `format`: "parquet" (the Parquet export's columns) or "jsonl" (the CLI's lines).
    `max_shard_retries`: Ray's retries of a shard whose document still had failed chunks
    after the client's own `retries`.
    """
    canonical = canonical_options(options)  # a bad option is refused here, not in a task
    # Absolute: the actors' working directory is not the driver's.
    folder = os.path.abspath(os.fspath(out))
    shard_path(Path(folder), "", format)  # an unknown format too
    if num_shards < 1 or concurrency < 1:
        raise ValueError("num_shards and concurrency must be at least 1")
    files, root = _files(ds_or_paths, root)
    Path(folder).mkdir(parents=True, exist_ok=True)
    _retry_incomplete_documents(files.context, max_shard_retries)
    documents = files.map_batches(
        ExtractDocuments, batch_format="pyarrow", batch_size=EXTRACT_BATCH_SIZE,
        fn_constructor_kwargs={"root": root, "options": canonical, "num_shards": num_shards},
        compute=ActorPoolStrategy(min_size=1, max_size=extract_concurrency),
        num_cpus=extract_num_cpus)
    # One partition per shard: a task holds one shard's documents (sometimes two, where
    # the hash partitioning puts them together), and a retried task redoes no more.
    summaries = documents.groupby("shard", num_partitions=num_shards).map_groups(
        GenerateShards, batch_format="pyarrow",
        fn_constructor_kwargs={
            "target": target, "out": folder, "options": canonical, "format": format,
            "credentials": credentials, "streams": streams, "max_in_flight": max_in_flight,
            "timeout": timeout, "retries": retries},
        compute=ActorPoolStrategy(size=concurrency), num_cpus=GENERATE_NUM_CPUS)
    return sorted(summaries.take_all(), key=lambda summary: str(summary["key"]))


def _files(ds_or_paths: Inputs, root: str | None) -> tuple[ray.data.Dataset, str]:
    """The files as read_binary_files rows, and the root of their document ids."""
    if isinstance(ds_or_paths, ray.data.Dataset):
        if root is None:
            raise ValueError("with a Dataset, give root: the folder its paths are below")
        return ds_or_paths, root
    given = ([ds_or_paths] if isinstance(ds_or_paths, str | os.PathLike)
             else list(ds_or_paths))
    paths = [_absolute(os.fspath(path)) for path in given]
    if root is None:
        root = _common_folder(paths)
    files = _listed(paths)
    if not files:
        raise ValueError(f"no files in {', '.join(paths)}")
    return ray.data.read_binary_files(files, include_paths=True, num_cpus=READ_NUM_CPUS), root


def _absolute(path: str) -> str:
    """A local path made absolute (read_binary_files reports paths as given, and a document
    id must not depend on the working directory); a URI as it is."""
    return path if "://" in path else os.path.abspath(path)


def _listed(paths: list[str]) -> list[str]:
    """Local folders walked as the CLI walks them (hidden files and folders left out at any
    depth), so a folder gives the same documents here as to `synthqa generate`; URIs are
    listed by Ray (which leaves out paths starting with `.` or `_` below the folder)."""
    local = [path for path in paths if "://" not in path]
    return ([str(path) for path in collect_files(local)]
            + [path for path in paths if "://" in path])


def _common_folder(paths: list[str]) -> str:
    """As the CLI's ids: the folder the files share (a folder given counts as itself)."""
    if any("://" in path for path in paths):
        raise ValueError("with URIs, give root: the folder the documents are below")
    return os.path.commonpath([path if os.path.isdir(path) else os.path.dirname(path)
                               for path in paths])


def _retry_incomplete_documents(context: Any, attempts: int) -> None:
    """Lets Ray Data retry a task that raised IncompleteDocument or ReplicaUnavailable, up to
    `attempts` times (its
    map tasks retry no user error by default). Set on the dataset's own context, which its
    derived datasets share, keeping what the caller set."""
    retried = context.retried_map_errors
    if retried is not True:
        patterns = list(retried or [])
        patterns += [name for name in RETRIED_ERRORS if name not in patterns]
        context.retried_map_errors = patterns
    context.max_map_retries = max(context.max_map_retries, attempts)
