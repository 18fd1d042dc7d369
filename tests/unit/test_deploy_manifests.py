"""The Kubernetes manifests in deploy/kubernetes: valid API objects (the schemas that
kubernetes-validate ships, strict, offline) that agree with the server's flags."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from synthqa.server.config import ServerSettings, parse
from synthqa.v1 import synthqa_pb2

from ..paths import REPO

DEPLOY = REPO / "deploy" / "kubernetes"
KUSTOMIZATION = DEPLOY / "kustomization.yaml"
# Examples of objects the user creates (with real data), kept out of the kustomization.
EXAMPLES = {"secrets.example.yaml"}
API_FILES = sorted(path for path in DEPLOY.glob("*.yaml") if path != KUSTOMIZATION)
# The newest Kubernetes release whose schemas the installed kubernetes-validate holds.
SCHEMA_VERSION = kubernetes_validate.latest_version()

READY_SERVICE = synthqa_pb2.DESCRIPTOR.services_by_name["SynthQAService"].full_name
WHOLE_SERVER = ""  # grpc.health.v1: the empty name is the server as a whole
IMAGE_UID = 10001  # the user the Dockerfile creates
GPU = "nvidia.com/gpu"


def documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as file:
        return [document for document in yaml.safe_load_all(file) if document]


def objects() -> list[dict[str, Any]]:
    return [document for path in API_FILES for document in documents(path)]


def the(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects() if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def headless_service() -> dict[str, Any]:
    found = [o for o in objects()
             if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None"]
    assert len(found) == 1, "expected one headless Service (clusterIP: None)"
    return found[0]


def metrics_service() -> dict[str, Any]:
    found = [o for o in objects() if o["kind"] == "Service"
             and "prometheus.io/scrape" in o["metadata"].get("annotations", {})]
    assert len(found) == 1, "expected one Service with prometheus.io annotations"
    return found[0]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = the("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    only: dict[str, Any] = containers[0]
    return only


def server_settings() -> ServerSettings:
    """The container's args as the server itself reads them: a misspelt flag fails here."""
    _, settings = parse([str(arg) for arg in container().get("args", [])])
    return settings


def container_port(name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert name_or_number in ports, f"no container port named {name_or_number}"
    number: int = ports[name_or_number]
    return number


def selects_the_pods(selector: dict[str, str]) -> bool:
    labels = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup fails: the schemas must come from the package."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access during validation: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_manifests_are_there() -> None:
    kinds = {o["kind"] for o in objects()}
    assert {"Deployment", "Service", "PodDisruptionBudget", "Secret"} <= kinds


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("path", API_FILES, ids=lambda path: path.name)
def test_valid_against_the_kubernetes_schema(path: Path) -> None:
    """Strict: a misspelt or misplaced field is an error, as `kubectl apply` would make it
    (server-side field validation is strict by default)."""
    docs = documents(path)
    assert docs, f"{path.name} holds no object"
    for document in docs:
        name = f"{path.name}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
        problem = None
        try:
            version = kubernetes_validate.validate(document, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path) or "(top)"
            problem = f"not valid Kubernetes {error.version}: {where}: {error.message}"
        except kubernetes_validate.SchemaNotFoundError as error:
            problem = error.message
        if problem is not None:  # failed outside the except: no chained tracebacks
            pytest.fail(f"{name}: {problem}")
        print(f"{name} valid against Kubernetes {version} (kubernetes-validate "
              f"{kubernetes_validate.__version__}, strict)")


def test_the_kustomization_lists_every_manifest() -> None:
    # kubernetes-validate has no schema for kustomize's own file.
    [kustomization] = documents(KUSTOMIZATION)
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    missing = [name for name in resources if not (DEPLOY / name).is_file()]
    assert not missing, f"kustomization.yaml lists files that do not exist: {missing}"
    expected = {path.name for path in API_FILES} - EXAMPLES
    assert set(resources) == expected


def test_probes_are_grpc_on_the_health_port() -> None:
    settings = server_settings()
    assert settings.health_port, "--health-port is missing: kubelet probes cannot do TLS"
    assert settings.health_port != settings.port
    assert settings.health_host not in {"127.0.0.1", "localhost", "::1"}, \
        "the kubelet probes the pod IP, not loopback"
    expected = {"startupProbe": READY_SERVICE, "readinessProbe": READY_SERVICE,
                "livenessProbe": WHOLE_SERVER}
    for probe_name, service in expected.items():
        probe = container().get(probe_name)
        assert probe is not None, f"{probe_name} missing"
        handlers = {"grpc", "exec", "httpGet", "tcpSocket"} & probe.keys()
        assert handlers == {"grpc"}, f"{probe_name} should use the native grpc probe"
        assert probe["grpc"]["port"] == settings.health_port, probe_name
        assert probe["grpc"].get("service") == service, probe_name
        # Kubernetes 1.37's TLS mode would not reach the plaintext health port.
        assert probe["grpc"].get("mode", "Plaintext") == "Plaintext", probe_name


def test_the_startup_probe_allows_for_downloading_the_model() -> None:
    probe = container()["startupProbe"]
    budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
    assert budget >= 15 * 60


def test_container_ports_match_the_args() -> None:
    settings = server_settings()
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert ports == {"grpc": settings.port, "health": settings.health_port,
                     "metrics": settings.observability.metrics_port}
    assert len(set(ports.values())) == 3


def test_termination_grace_outlasts_the_shutdown_grace() -> None:
    settings = server_settings()
    grace = pod_spec().get("terminationGracePeriodSeconds", 30)  # Kubernetes' default: 30
    assert grace > settings.shutdown_grace, \
        "the kubelet would SIGKILL the server while it still drains calls"


def test_the_headless_service_reaches_the_grpc_port_of_ready_pods() -> None:
    service = headless_service()
    assert service["spec"]["clusterIP"] == "None"
    assert not service["spec"].get("publishNotReadyAddresses", False)
    assert selects_the_pods(service["spec"]["selector"])
    assert selects_the_pods(the("Deployment")["spec"]["selector"]["matchLabels"])
    [port] = service["spec"]["ports"]
    assert port["port"] == server_settings().port
    assert container_port(port.get("targetPort", port["port"])) == server_settings().port


def test_metrics_annotations_point_at_the_metrics_port() -> None:
    metrics_port = server_settings().observability.metrics_port
    assert metrics_port, "--metrics-port is missing"
    template = the("Deployment")["spec"]["template"]
    service = metrics_service()
    for owner, notes in (("pod template", template["metadata"].get("annotations", {})),
                         ("metrics Service", service["metadata"]["annotations"])):
        assert notes.get("prometheus.io/scrape") == "true", owner
        assert notes.get("prometheus.io/port") == str(metrics_port), owner
        assert notes.get("prometheus.io/path") == "/metrics", owner
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert service["spec"].get("clusterIP") != "None"
    assert selects_the_pods(service["spec"]["selector"])
    [port] = service["spec"]["ports"]
    assert container_port(port.get("targetPort", port["port"])) == metrics_port


def test_one_gpu_per_pod_and_two_replicas() -> None:
    limits = container()["resources"]["limits"]
    assert int(limits.get(GPU, 0)) >= 1, f"no {GPU} limit: the pod would land on any node"
    assert the("Deployment")["spec"]["replicas"] == 2
    budget = the("PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert selects_the_pods(budget["spec"]["selector"]["matchLabels"])


def test_runs_unprivileged_as_the_image_user() -> None:
    pod = pod_spec().get("securityContext", {})
    own = container().get("securityContext", {})

    def setting(key: str) -> Any:
        return own.get(key, pod.get(key))  # the container's overrides the pod's

    assert setting("runAsNonRoot") is True
    assert setting("runAsUser") == IMAGE_UID
    assert own.get("allowPrivilegeEscalation") is False
    assert own.get("capabilities", {}).get("drop") == ["ALL"]
    assert not own.get("capabilities", {}).get("add")
    assert own.get("privileged", False) is False


def test_writable_paths_are_volumes_and_shm_is_memory() -> None:
    assert container()["securityContext"].get("readOnlyRootFilesystem") is True
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    mounted = {mount["mountPath"]: volumes[mount["name"]]
               for mount in container()["volumeMounts"]}
    for path in ("/home/synthqa", "/var/cache/synthqa", "/tmp", "/dev/shm"):
        assert path in mounted, f"{path} must be writable: mount a volume there"
        assert {"emptyDir", "persistentVolumeClaim", "ephemeral"} & mounted[path].keys(), path
    assert mounted["/dev/shm"].get("emptyDir", {}).get("medium") == "Memory"


def test_tls_and_token_files_come_from_the_example_secrets() -> None:
    settings = server_settings()
    tls = settings.security.tls
    assert tls is not None, "--tls-cert-file and --tls-key-file are missing"
    assert settings.security.token_file is not None, "--auth-token-file is missing"
    files = [tls.cert_file, tls.key_file, settings.security.token_file]
    if tls.client_ca_file is not None:
        files.append(tls.client_ca_file)
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    secret_dirs = {Path(mount["mountPath"]): volumes[mount["name"]]["secret"]["secretName"]
                   for mount in container()["volumeMounts"]
                   if "secret" in volumes[mount["name"]]}
    examples = {s["metadata"]["name"]: s for s in objects() if s["kind"] == "Secret"}
    for file in files:
        assert file.parent in secret_dirs, f"{file} is not in a mounted Secret"
        secret = examples.get(secret_dirs[file.parent])
        assert secret is not None, f"secrets.example.yaml lacks {secret_dirs[file.parent]}"
        keys = {*secret.get("stringData", {}), *secret.get("data", {})}
        assert file.name in keys, f"Secret {secret_dirs[file.parent]} has no key {file.name}"


def test_the_image_is_pinned() -> None:
    image = container()["image"]
    name, _, tag = image.rpartition(":")
    assert "@sha256:" in image or (name and tag and tag != "latest" and "/" not in tag)


def test_liveness_outlasts_the_drain() -> None:
    """"" turns NOT_SERVING at SIGTERM: liveness must not restart a draining pod."""
    probe = container()["livenessProbe"]
    budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
    assert budget > server_settings().shutdown_grace
