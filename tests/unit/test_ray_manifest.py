"""deploy/ray, the corpus on KubeRay, checked offline as deploy/kubernetes is: the RayJob's pod
templates (head, workers, submitter) as Kubernetes Pods and the shared volume's claim against
the schemas kubernetes-validate ships (strict); the RayJob's own fields by name (KubeRay's CRD
is not at hand); its entrypoint through the real `python -m synthqa.ray` parser, aimed at the
headless Service of deploy/kubernetes with the server's Secret's token; the image's Dockerfile
through hadolint, on the Ray the client's ray extra pins."""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import ray

from synthqa.client.cli_args import TOKEN_VARIABLE
from synthqa.ray import cli
from synthqa.ray.pipeline import generate_dataset

from ..paths import REPO
from .test_deploy_manifests import (
    SCHEMA_VERSION,
    documents,
    headless_service,
    no_network,  # noqa: F401 - the fixture, for usefixtures below
    objects,
    server_settings,
)
from .test_deploy_manifests import container as server_container
from .test_deploy_manifests import pod_spec as server_pod_spec
from .test_image import _output, _run, hadolint

DEPLOY = REPO / "deploy" / "ray"
RAYJOB = DEPLOY / "rayjob.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
SERVER_DOCKERFILE = REPO / "Dockerfile"
RAY_UID = 1000  # the user of Ray's images (group users, gid 100)
# The fields of KubeRay's ray.io/v1 types that a RayJob here may use: a misspelt one would be
# dropped by the API server's pruning, silently.
RAYJOB_FIELDS = {"entrypoint", "shutdownAfterJobFinishes", "ttlSecondsAfterFinished",
                 "submitterPodTemplate", "submitterConfig", "rayClusterSpec",
                 "activeDeadlineSeconds", "runtimeEnvYAML", "submissionMode", "suspend",
                 "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "metadata",
                 "clusterSelector", "jobId", "backoffLimit", "deletionPolicy", "managedBy"}
CLUSTER_FIELDS = {"rayVersion", "enableInTreeAutoscaling", "autoscalerOptions",
                  "headGroupSpec", "workerGroupSpecs", "headServiceAnnotations", "suspend",
                  "gcsFaultToleranceOptions", "managedBy"}
AUTOSCALER_FIELDS = {"upscalingMode", "idleTimeoutSeconds", "resources", "securityContext",
                     "image", "imagePullPolicy", "env", "envFrom", "volumeMounts", "version"}
HEAD_FIELDS = {"rayStartParams", "template", "serviceType", "headService", "enableIngress"}
WORKER_FIELDS = {"groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams",
                 "template", "idleTimeoutSeconds", "scaleStrategy", "numOfHosts", "suspend"}


def rayjob() -> dict[str, Any]:
    [job] = documents(RAYJOB)
    return job


def cluster() -> dict[str, Any]:
    spec: dict[str, Any] = rayjob()["spec"]["rayClusterSpec"]
    return spec


def templates() -> dict[str, dict[str, Any]]:
    """Every pod template of the RayJob, by role."""
    found = {"head": cluster()["headGroupSpec"]["template"]}
    for group in cluster()["workerGroupSpecs"]:
        found[f"worker {group['groupName']}"] = group["template"]
    if "submitterPodTemplate" in rayjob()["spec"]:
        found["submitter"] = rayjob()["spec"]["submitterPodTemplate"]
    return found


def ray_container(template: dict[str, Any]) -> dict[str, Any]:
    """KubeRay runs Ray in the first container."""
    first: dict[str, Any] = template["spec"]["containers"][0]
    return first


def workers() -> list[dict[str, Any]]:
    return [template for role, template in templates().items() if role.startswith("worker")]


def entrypoint() -> Any:
    """The entrypoint's arguments as `python -m synthqa.ray` parses them (Ray runs it in a
    shell); files it names are checked below against the pods' volumes, not here."""
    words = shlex.split(rayjob()["spec"]["entrypoint"])
    assert words[:3] == ["python", "-m", "synthqa.ray"], words[:3]
    try:
        return cli.build_parser().parse_args(words[3:])
    except SystemExit:
        pytest.fail(f"python -m synthqa.ray refuses the entrypoint's arguments: {words[3:]}")


def mounted(template: dict[str, Any], path: str) -> tuple[Path, dict[str, Any]]:
    """The mount of the Ray container that holds `path`, and its volume."""
    volumes = {volume["name"]: volume for volume in template["spec"].get("volumes", [])}
    for mount in ray_container(template).get("volumeMounts", []):
        if Path(path).is_relative_to(mount["mountPath"]):
            return Path(mount["mountPath"]), volumes[mount["name"]]
    pytest.fail(f"{path} is on no volume of {ray_container(template)['name']}")


def validate(document: dict[str, Any], name: str) -> None:
    problem = None
    try:
        kubernetes_validate.validate(document, SCHEMA_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path) or "(top)"
        problem = f"not valid Kubernetes {error.version}: {where}: {error.message}"
    if problem is not None:
        pytest.fail(f"{name}: {problem}")


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("role", list(templates()))
def test_each_pod_template_is_a_valid_pod(role: str) -> None:
    """Strict, as the API server checks a template when KubeRay creates the pod from it."""
    template = templates()[role]
    metadata = {"name": f"synthqa-ray-{role.replace(' ', '-')}", **template.get("metadata", {})}
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
              "spec": template["spec"]}, role)


@pytest.mark.usefixtures("no_network")
def test_the_autoscaler_sidecar_settings_are_valid_container_settings() -> None:
    options = cluster()["autoscalerOptions"]
    sidecar = {"name": "autoscaler", "image": "autoscaler", "resources": options["resources"],
               "securityContext": options["securityContext"]}
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "autoscaler"},
              "spec": {"containers": [sidecar]}}, "autoscalerOptions")


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("path", sorted(set(DEPLOY.glob("*.yaml")) - {RAYJOB}),
                         ids=lambda path: path.name)
def test_the_other_manifests_are_valid(path: Path) -> None:
    for document in documents(path):
        validate(document, f"{path.name}: {document['kind']}")


def test_the_rayjob_uses_kuberays_fields() -> None:
    job = rayjob()
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert set(job) <= {"apiVersion", "kind", "metadata", "spec"}
    assert set(job["spec"]) <= RAYJOB_FIELDS, set(job["spec"]) - RAYJOB_FIELDS
    assert set(cluster()) <= CLUSTER_FIELDS, set(cluster()) - CLUSTER_FIELDS
    assert set(cluster()["autoscalerOptions"]) <= AUTOSCALER_FIELDS
    assert set(cluster()["headGroupSpec"]) <= HEAD_FIELDS
    for group in cluster()["workerGroupSpecs"]:
        assert set(group) <= WORKER_FIELDS, set(group) - WORKER_FIELDS
        assert all(isinstance(value, str) for value in group["rayStartParams"].values())
    assert all(isinstance(value, str)
               for value in cluster()["headGroupSpec"]["rayStartParams"].values())


def test_the_cluster_goes_when_the_job_ends() -> None:
    spec = rayjob()["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] > 0
    assert templates()["submitter"]["spec"]["restartPolicy"] == "Never"
    # KubeRay writes the submitter's `ray job submit` command only where none is given.
    assert "command" not in ray_container(templates()["submitter"])


def test_one_ray_version_everywhere() -> None:
    """The RayJob's rayVersion, the image's base and the client's ray extra: the Ray here."""
    assert cluster()["rayVersion"] == ray.__version__
    base = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\S+)$", DOCKERFILE.read_text(), re.M)
    assert base, "deploy/ray/Dockerfile sets ARG RAY_IMAGE=rayproject/ray:<tag>"
    # <version>-py<python>, no platform suffix: the CPU image. The server image's Python.
    python = re.search(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)", SERVER_DOCKERFILE.read_text(),
                       re.M)
    assert python
    assert base.group(1) == f"{ray.__version__}-py{python.group(1)}{python.group(2)}"
    extras = (REPO / "client" / "pyproject.toml").read_text()
    assert f'"ray[data]=={ray.__version__}"' in extras


def test_hadolint_accepts_the_ray_dockerfile() -> None:
    result = _run([hadolint(), "--no-color", str(DOCKERFILE)], timeout=120)
    assert result.returncode == 0, _output(result)


def test_the_image_installs_the_client_with_its_extras_as_rays_user() -> None:
    text = " ".join(DOCKERFILE.read_text().replace("\\\n", " ").split())
    assert re.search(r"pip install --no-cache-dir \S*synthqa-client\[ray,ingest\]", text)
    assert re.search(r"COPY --chown=1000:100 client/ ", text)
    users = re.findall(r"^USER (\S+)$", DOCKERFILE.read_text(), re.M)
    assert users == [f"{RAY_UID}:100"]


def test_every_pod_runs_the_image_unprivileged_with_resources() -> None:
    images = set()
    for role, template in templates().items():
        pod = template["spec"].get("securityContext", {})
        for container in template["spec"]["containers"]:
            own = container.get("securityContext", {})
            assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, role
            assert own.get("runAsUser", pod.get("runAsUser")) == RAY_UID, role
            assert own.get("allowPrivilegeEscalation") is False, role
            assert own.get("capabilities", {}).get("drop") == ["ALL"], role
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), role
            assert "memory" in resources["limits"], role
            images.add(container["image"])
    assert len(images) == 1, f"one image for head, workers and submitter: {images}"
    name, _, tag = images.pop().rpartition(":")
    assert name and tag and tag != "latest"
    options = cluster()["autoscalerOptions"]
    assert {"cpu", "memory"} <= options["resources"]["limits"].keys()
    assert options["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_head_runs_the_driver_and_shows_the_dashboard() -> None:
    head = cluster()["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    ports = {port["name"]: port["containerPort"]
             for port in ray_container(head["template"])["ports"]}
    assert ports["dashboard"] == 8265 and ports["gcs-server"] == 6379


def test_the_workers_autoscale() -> None:
    assert cluster()["enableInTreeAutoscaling"] is True
    for group in cluster()["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["maxReplicas"] > group["minReplicas"]
        requests = ray_container(group["template"])["resources"]["requests"]
        assert "nvidia.com/gpu" not in requests, "the workers call the servers: no GPUs"


def test_the_entrypoint_maps_onto_generate_dataset() -> None:
    args = entrypoint()
    arguments = cli.dataset_arguments(args)
    inspect.signature(generate_dataset).bind(args.inputs, **arguments)
    assert arguments["num_shards"] >= 1 and arguments["options"]
    assert all("://" not in path for path in args.inputs) or args.root is not None
    assert args.token is None or args.token == cli.build_parser().get_default("token"), (
        "the token must not be in the entrypoint: it shows in the dashboard")


def test_the_target_is_the_headless_service_and_its_grpc_port() -> None:
    target = entrypoint().target
    assert isinstance(target, str) and target.startswith("dns:///"), target
    address = urlsplit("//" + target.removeprefix("dns:///"))
    service = headless_service()
    name = service["metadata"]["name"]
    assert address.hostname is not None
    assert re.fullmatch(rf"{re.escape(name)}\.[a-z0-9-]+\.svc\.cluster\.local",
                        address.hostname), address.hostname
    [port] = service["spec"]["ports"]
    assert address.port == port["port"] == server_settings().port


def test_the_token_comes_from_the_servers_token_secret() -> None:
    token_file = server_settings().security.token_file
    assert token_file is not None
    volumes = {volume["name"]: volume for volume in server_pod_spec()["volumes"]}
    [secret_name] = [volumes[mount["name"]]["secret"]["secretName"]
                     for mount in server_container()["volumeMounts"]
                     if Path(mount["mountPath"]) == token_file.parent]
    head = ray_container(cluster()["headGroupSpec"]["template"])
    [variable] = [env for env in head["env"] if env["name"] == TOKEN_VARIABLE]
    reference = variable["valueFrom"]["secretKeyRef"]
    assert reference["name"] == secret_name
    assert not reference.get("optional", False)
    # A key of its own: the server's file holds many tokens, one a line, and a token with a
    # newline is refused.
    assert reference["key"] != token_file.name
    [example] = [o for o in objects() if o["kind"] == "Secret"
                 and o["metadata"]["name"] == secret_name]
    assert reference["key"] in {*example.get("stringData", {}), *example.get("data", {})}
    # Only the driver holds it; the actors get it from the driver.
    for role, template in templates().items():
        if role != "head":
            names = {env["name"] for c in template["spec"]["containers"]
                     for env in c.get("env", [])}
            assert TOKEN_VARIABLE not in names, role


def test_out_and_the_ca_are_on_every_ray_node() -> None:
    """The driver (head) makes the output folder and checks the CA file; the actors (workers)
    write the shards and read the CA."""
    args = entrypoint()
    assert "://" not in args.out, "shard files are renamed into place: not an object store"
    ray_nodes = [cluster()["headGroupSpec"]["template"], *workers()]
    claims = set()
    for template in ray_nodes:
        _, volume = mounted(template, args.out)
        claims.add(volume["persistentVolumeClaim"]["claimName"])
        where, secret = mounted(template, str(args.ca_file))
        items = {item["path"]: item["key"] for item in secret["secret"].get("items", [])}
        relative = str(Path(args.ca_file).relative_to(where))
        assert relative in items or not items, f"{relative} is not an item of the CA Secret"
    assert len(claims) == 1, f"one shared volume for every node: {claims}"
    [claim] = [document for path in DEPLOY.glob("*.yaml") for document in documents(path)
               if document["kind"] == "PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == claims.pop()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
