# synthqa server for NVIDIA GPUs.
#
#   docker build -t synthqa .
#   docker run --gpus all --ipc=host --stop-timeout 45 -p 50051:50051 \
#       -v synthqa-hf:/var/cache/synthqa synthqa
#
# The base is the official Python image, not nvidia/cuda: the vllm 0.32.0 wheel and the torch
# wheel it pins bring their own CUDA user-space libraries (the nvidia-* wheels, CUDA 13), so a
# CUDA base image would only add a second, unused copy. The host needs the NVIDIA driver and
# the NVIDIA Container Toolkit; the driver must be new enough for CUDA 13.
#
# The server drains calls for --shutdown-grace (30 s by default) after SIGTERM, longer than
# Docker's default 10 s stop timeout, hence --stop-timeout above.
FROM python:3.11-slim-bookworm

# vLLM version of the "gpu" extra in pyproject.toml. It is installed in a layer of its own,
# before the source is copied, so that editing synthqa does not reinstall vLLM and torch.
ARG VLLM_VERSION=0.32.0

# Triton compiles a small C launcher when it first loads a kernel, so the image needs a C
# compiler and libc headers at run time (the Python headers come with this base image).
# Not version-pinned (DL3008): Debian drops superseded package versions from its mirrors, so an
# exact pin breaks the build at the next point release; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# The NVIDIA Container Toolkit reads these to mount the driver; nvidia/cuda images set them,
# the Python image does not.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/synthqa \
    PATH=/opt/synthqa/bin:$PATH \
    HF_HOME=/var/cache/synthqa/huggingface

# Everything is installed by root into a virtual environment the server cannot modify.
RUN python -m venv /opt/synthqa \
    && pip install --no-cache-dir "vllm==${VLLM_VERSION}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY protos/ protos/
COPY client/ client/
COPY server/ server/
# "./[gpu]" is ".[gpu]": this project with its gpu extra (spelled as a path for hadolint).
RUN pip install --no-cache-dir ./client "./[gpu]"

# The server runs as an unprivileged user. It may write only its home (vLLM and Triton keep
# compile caches there) and the Hugging Face cache, which a volume can hold.
RUN groupadd --system --gid 10001 synthqa \
    && useradd --system --uid 10001 --gid synthqa --create-home --home-dir /home/synthqa \
        --shell /usr/sbin/nologin synthqa \
    && mkdir -p /var/cache/synthqa \
    && chown synthqa:synthqa /var/cache/synthqa
USER 10001:10001
WORKDIR /home/synthqa

EXPOSE 50051

# Healthy once the gRPC health service reports SERVING for synthqa, which happens after the
# engine has loaded the model and warmed up; the start period leaves time for the download.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
    CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel('localhost:50051')).Check(h.HealthCheckRequest(service='synthqa.v1.SynthQAService'), timeout=5); sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["synthqa-server"]
CMD ["--model", "Qwen/Qwen2.5-0.5B-Instruct", "--host", "0.0.0.0", "--port", "50051"]
