"""The contract seen from outside Python: buf lints protos/, a Node.js client built from protos/
alone talks to the real server. (tests/unit/test_image.py lints the Dockerfile.)

The tests install their own tools when missing: the Node packages (grpc-js, proto-loader, buf)
from tests/node/package-lock.json with `npm ci`. Node.js and npm must be on PATH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..paths import REPO as ROOT

PROTOS = ROOT / "protos"
NODE_DIR = ROOT / "tests" / "node"
NODE_BIN = NODE_DIR / "node_modules" / ".bin"

# What tests/node/client.mjs sends: options first, then these documents.
NODE_NUM_PAIRS = 2
NODE_DOCUMENTS = ("node-a", "node-b")
EXPECTED_EVENT_KINDS = {"chunk_started", "qa_pair", "chunk_completed", "document_completed"}


def _run(args: list[str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture(scope="module")
def node_packages() -> Path:
    """tests/node/node_modules, installed from the lock file if absent. Returns the .bin dir."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm must be on PATH (Debian: apt install nodejs npm)"
    wanted = [
        NODE_BIN / "buf",
        NODE_DIR / "node_modules" / "@grpc" / "grpc-js" / "package.json",
        NODE_DIR / "node_modules" / "@grpc" / "proto-loader" / "package.json",
        NODE_DIR / "node_modules" / "@opentelemetry" / "instrumentation-grpc" / "package.json",
    ]
    if not all(path.exists() for path in wanted):
        result = _run(
            [npm, "ci", "--include=dev", "--no-audit", "--no-fund"], cwd=NODE_DIR, timeout=600
        )
        assert result.returncode == 0, f"npm ci failed in {NODE_DIR}\n{_output(result)}"
    missing = [str(path) for path in wanted if not path.exists()]
    assert not missing, f"npm ci did not install {missing}"
    return NODE_BIN


def test_buf_lint_is_clean(node_packages: Path) -> None:
    result = _run([str(node_packages / "buf"), "lint"], cwd=PROTOS, timeout=300)
    assert result.returncode == 0, f"buf lint in {PROTOS}\n{_output(result)}"


# The contract before records, which clients in the field were built from; and the commit
# before this one. Every change since must be additive.
BREAKING_BASELINES = ("6de525f", "HEAD~1")


@pytest.mark.parametrize("ref", BREAKING_BASELINES)
def test_protos_have_no_breaking_change(node_packages: Path, ref: str) -> None:
    have = _run(["git", "cat-file", "-e", f"{ref}^{{commit}}"], cwd=ROOT, timeout=30)
    assert have.returncode == 0, f"buf breaking needs the repository's history ({ref})"
    # buf clones 50 commits deep unless told: the baseline must be within the clone.
    depth = int(_run(["git", "rev-list", "--count", f"{ref}..HEAD"], cwd=ROOT,
                     timeout=30).stdout.strip() or 0) + 10
    result = _run([str(node_packages / "buf"), "breaking", "--against",
                   f"{ROOT / '.git'}#ref={ref},subdir=protos,depth={depth}"], cwd=PROTOS,
                  timeout=300)
    assert result.returncode == 0, f"buf breaking against {ref}\n{_output(result)}"


def test_protos_are_buf_formatted(node_packages: Path) -> None:
    result = _run(
        [str(node_packages / "buf"), "format", "--diff", "--exit-code"], cwd=PROTOS, timeout=300
    )
    assert result.returncode == 0, f"buf format would change protos/\n{_output(result)}"


def _node_summary(target: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None
    result = _run([node, str(NODE_DIR / "client.mjs"), target], cwd=ROOT, timeout=270)
    assert result.returncode == 0, f"the Node client failed against {target}\n{_output(result)}"
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout\n{_output(result)}"
    return json.loads(lines[0])


def test_node_client_generates_pairs(node_packages: Path, server: Any) -> None:
    summary = _node_summary(server.target)
    shown = json.dumps(summary, indent=2)

    assert summary["model"], shown
    assert summary["max_model_len"] > 0, shown
    assert summary["chunk_document"]["chunk_count"] >= 1, shown
    assert summary["num_pairs"] == NODE_NUM_PAIRS, shown

    documents = summary["documents"]
    assert set(documents) == set(NODE_DOCUMENTS), shown
    for document_id in NODE_DOCUMENTS:
        doc = documents[document_id]
        chunks = doc["chunk_count"]
        assert isinstance(chunks, int) and chunks >= 1, f"{document_id}\n{shown}"
        assert doc["document_completed"], f"{document_id} never completed\n{shown}"
        assert doc["chunk_failed"] == 0, f"{document_id} had failed chunks\n{shown}"
        assert doc["chunk_started"] == chunks, f"{document_id}\n{shown}"
        assert doc["chunk_completed"] == chunks, f"{document_id}\n{shown}"
        assert doc["qa_pair"] == NODE_NUM_PAIRS * chunks, f"{document_id}\n{shown}"
        assert doc["completed_pair_count"] == doc["qa_pair"], f"{document_id}\n{shown}"
        assert doc["completed_chunk_count"] == chunks, f"{document_id}\n{shown}"
        assert doc["failed_chunk_count"] == 0, f"{document_id}\n{shown}"

    assert set(summary["event_kinds"]) == EXPECTED_EVENT_KINDS, shown
    assert summary["event_kinds"][0] == "chunk_started", shown
