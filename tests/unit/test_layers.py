"""The layer rules docs/architecture.md states, checked against the imports: which packages may
import vLLM, grpc, protobuf and OpenTelemetry, that the client never reaches the server, and
that it never needs Ray."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ..paths import REPO

SERVER = REPO / "server" / "synthqa" / "server"
CLIENT = REPO / "client" / "src" / "synthqa"


def imports(path: Path) -> set[str]:
    """Top-level names of the modules `path` imports, relative ones resolved to synthqa's."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("synthqa.<relative>" if node.level else node.module or "")
    return found


def modules_importing(root: Path, prefix: str) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*.py")
            if any(name == prefix or name.startswith(prefix + ".") for name in imports(path))}


@pytest.mark.parametrize(("prefix", "allowed"), [
    # The engine adapter; the entry point's engine flags and the engine's start.
    ("vllm", {"engine/vllm_engine.py", "config.py", "lifecycle.py"}),
    ("xgrammar", {"engine/grammar.py"}),
    ("torch", set()),
])
def test_the_engine_libraries_stay_in_their_modules(prefix: str, allowed: set[str]) -> None:
    assert modules_importing(SERVER, prefix) <= allowed


@pytest.mark.parametrize("package", ["pipeline", "text", "quality", "results"])
def test_the_domain_never_imports_grpc_protobuf_or_opentelemetry(package: str) -> None:
    for prefix in ("grpc", "google.protobuf", "opentelemetry", "synthqa.v1", "vllm"):
        assert not modules_importing(SERVER / package, prefix), (package, prefix)


def test_the_client_never_imports_the_server_torch_or_vllm() -> None:
    for prefix in ("synthqa.server", "torch", "vllm", "transformers"):
        assert not modules_importing(CLIENT, prefix), prefix


def test_the_client_never_imports_ray() -> None:
    # synthqa.ray needs the ray extra; the client, its CLI and the contract work without it.
    for package in ("client", "contract"):
        for prefix in ("ray", "synthqa.ray"):
            assert not modules_importing(CLIENT / package, prefix), (package, prefix)


def test_opentelemetry_stays_in_the_telemetry_modules() -> None:
    # rpc_scope puts each RPC's status on its span.
    assert modules_importing(SERVER, "opentelemetry") <= {"grpc_api/rpc_scope.py"} | {
        f"observability/{name}" for name in ("__init__.py", "tracing.py", "call_spans.py",
                                             "server_spans.py", "metrics.py", "logs.py")}
    assert modules_importing(CLIENT, "opentelemetry") <= {"client/tracing.py"}
