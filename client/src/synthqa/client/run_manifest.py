"""`<out>.manifest.json`: what a finished `generate` run was, so that what is made from its
output later (an export's card, a report) needs nothing retyped: the command, the server
(model, version, engine layout, adapters, defaults), the options, every input file with its
sha256 and what happened to it, the extraction libraries' versions, times and counts."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from synthqa.v1 import synthqa_pb2 as pb

MANIFEST_VERSION = 1
_EXTRACTION_PACKAGES = ("pypdfium2", "trafilatura", "python-docx", "python-pptx",
                        "charset-normalizer")


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_manifest(out: Path, *, started: str, options: dict[str, Any],
                   server: pb.GetServerInfoResponse | None, inputs: list[dict[str, Any]],
                   counts: dict[str, Any]) -> Path:
    """Written whole or not at all (a temporary name, then renamed)."""
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "command": ["synthqa", *sys.argv[1:]],
        "started": started,
        "ended": now(),
        "synthqa_client": _version("synthqa-client"),
        "server": (json_format.MessageToDict(server, preserving_proto_field_name=True)
                   if server is not None else None),
        "options": {name: value for name, value in sorted(options.items())
                    if value is not None},
        "inputs": inputs,
        "extraction": {name: _version(name) for name in _EXTRACTION_PACKAGES},
        "counts": counts,
    }
    path = manifest_path(out)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    os.replace(partial, path)
    return path


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None
