"""Who may call, on servers of their own with real certificates made here: TLS with bearer
tokens, and mutual TLS with certificates re-read on SIGHUP. Callers: the Python client,
grpcurl and a Node.js client; each is let in with the right credentials and refused without."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synthqa.client import Credentials, Document, SynthQAClient, SynthQAError

from ..paths import REPO
from .certs import Authority, Issued
from .helpers import SAMPLE
from .serverproc import ServerProcess, free_port, health_status, serving_all
from .test_interop import NODE_DIR, node_packages  # noqa: F401 - the fixture
from .test_ops import GRPCURL

pytestmark = pytest.mark.e2e

TOKENS = ("first-token-4f1d9a", "second-token-b27c35")
SERVICE = "synthqa.v1.SynthQAService"


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    client: Issued
    rogue_ca: Issued
    rogue_client: Issued
    tokens: Path
    authority: Authority


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    authority, rogue = Authority(directory, "synthqa-test-ca"), Authority(directory, "rogue-ca")
    tokens = directory / "tokens"
    tokens.write_text(f"# the tokens callers may use\n{TOKENS[0]}\n\n{TOKENS[1]}\n")
    return Pki(ca=authority.bundle, server=authority.issue("server", "synthqa", server=True),
               client=authority.issue("client", "caller", server=False),
               rogue_ca=rogue.bundle,
               rogue_client=rogue.issue("rogue-client", "intruder", server=False),
               tokens=tokens, authority=authority)


def channel_credentials(ca: Issued, client: Issued | None = None) -> grpc.ChannelCredentials:
    key, cert = (client.key.read_bytes(), client.cert.read_bytes()) if client else (None, None)
    return grpc.ssl_channel_credentials(ca.cert.read_bytes(), key, cert)


def tls_process(pki: Pki) -> ServerProcess:
    """TLS and bearer tokens."""
    return ServerProcess(
        port=free_port(), log_path=REPO / "out" / "test-tls-server.log",
        extra_args=["--tls-cert-file", str(pki.server.cert), "--tls-key-file",
                    str(pki.server.key), "--auth-token-file", str(pki.tokens)],
        credentials=channel_credentials(pki.ca))


def mtls_process(pki: Pki, live: Path) -> ServerProcess:
    """Mutual TLS, no tokens, and a plaintext health-only port; its certificate files are
    copies in `live` the tests may replace."""
    cert, key = live / "server.pem", live / "server.key"
    shutil.copy(pki.server.cert, cert)
    shutil.copy(pki.server.key, key)
    return ServerProcess(
        port=free_port(), log_path=REPO / "out" / "test-mtls-server.log",
        extra_args=["--tls-cert-file", str(cert), "--tls-key-file", str(key),
                    "--tls-client-ca-file", str(pki.ca.cert), "--health-port",
                    str(free_port())],
        credentials=channel_credentials(pki.ca, pki.client))


@pytest.fixture(scope="module")
def secured_servers(tiny_model_path: str, pki: Pki, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[ServerProcess, ...]]:
    """The two, started at once."""
    yield from serving_all(tls_process(pki), mtls_process(pki, tmp_path_factory.mktemp("live")))


@pytest.fixture(scope="module")
def tls_server(secured_servers: tuple[ServerProcess, ...]) -> ServerProcess:
    return secured_servers[0]


@pytest.fixture(scope="module")
def mtls_server(secured_servers: tuple[ServerProcess, ...]) -> ServerProcess:
    return secured_servers[1]


def server_info_code(target: str, credentials: Credentials) -> grpc.StatusCode:
    with SynthQAClient(target, timeout=20, credentials=credentials) as client:
        try:
            client.server_info()
        except SynthQAError as error:
            return error.code
    return grpc.StatusCode.OK


def test_tls_with_a_token_generates_pairs(tls_server: ServerProcess, pki: Pki) -> None:
    for token in TOKENS:
        credentials = Credentials(ca_file=pki.ca.cert, token=token)
        with SynthQAClient(tls_server.target, timeout=300, credentials=credentials) as client:
            events = list(client.generate([Document("secure", SAMPLE[:400])], num_pairs=1))
        assert any(e.WhichOneof("event") == "document_completed" for e in events)


REFUSED: dict[str, tuple[Callable[[Pki], Credentials], grpc.StatusCode]] = {
    "plaintext": (lambda pki: Credentials(token=TOKENS[0]), grpc.StatusCode.UNAVAILABLE),
    "no token": (lambda pki: Credentials(ca_file=pki.ca.cert), grpc.StatusCode.UNAUTHENTICATED),
    "wrong token": (lambda pki: Credentials(ca_file=pki.ca.cert, token=TOKENS[0] + "x"),
                    grpc.StatusCode.UNAUTHENTICATED),
    # The client trusts another CA than the one that signed the server's certificate.
    "wrong CA": (lambda pki: Credentials(ca_file=pki.rogue_ca.cert, token=TOKENS[0]),
                 grpc.StatusCode.UNAVAILABLE),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_tls_server_refuses(tls_server: ServerProcess, pki: Pki, case: str) -> None:
    credentials, refused_with = REFUSED[case]
    assert server_info_code(tls_server.target, credentials(pki)) == refused_with


def test_refusal_gives_no_hint_and_health_stays_open(tls_server: ServerProcess,
                                                     pki: Pki) -> None:
    with grpc.secure_channel(tls_server.target, channel_credentials(pki.ca)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        info = channel.unary_unary(f"/{SERVICE}/GetServerInfo")
        for header in ("Bearer " + TOKENS[0][:-1], "Basic " + TOKENS[0]):
            with pytest.raises(grpc.RpcError) as refused:
                info(b"", metadata=[("authorization", header)], timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert TOKENS[0] not in refused.value.details()
            assert TOKENS[1] not in refused.value.details()


def grpcurl_tls(target: str, ca: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRPCURL, "-cacert", str(ca), *args, target,
                           f"{SERVICE}/GetServerInfo"],
                          capture_output=True, text=True, timeout=60)


def test_grpcurl_needs_the_ca_and_a_token(tls_server: ServerProcess, pki: Pki) -> None:
    allowed = grpcurl_tls(tls_server.target, pki.ca.cert,
                          "-H", f"authorization: Bearer {TOKENS[1]}")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["max_model_len"] == 2048
    refused = grpcurl_tls(tls_server.target, pki.ca.cert)
    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr
    plaintext = subprocess.run([GRPCURL, "-plaintext", "-H", f"authorization: Bearer {TOKENS[1]}",
                                tls_server.target, f"{SERVICE}/GetServerInfo"],
                               capture_output=True, text=True, timeout=60)
    assert plaintext.returncode != 0


def test_node_client_needs_tls_and_a_token(node_packages: Path,  # noqa: F811
                                           tls_server: ServerProcess, pki: Pki) -> None:
    node = shutil.which("node")
    assert node

    def call(**env: str) -> dict[str, object]:
        result = subprocess.run([node, str(NODE_DIR / "secure_client.mjs"), tls_server.target],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, **env})
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    ca = str(pki.ca.cert)
    assert call(SYNTHQA_CA_FILE=ca, SYNTHQA_TOKEN=TOKENS[0])["ok"] is True
    assert call(SYNTHQA_CA_FILE=ca)["code"] == "UNAUTHENTICATED"
    assert call(SYNTHQA_CA_FILE=ca, SYNTHQA_TOKEN="guess")["code"] == "UNAUTHENTICATED"
    assert call(SYNTHQA_TOKEN=TOKENS[0])["code"] == "UNAVAILABLE"


def test_cli_takes_tls_flags_and_the_token_variable(tls_server: ServerProcess, pki: Pki,
                                                    tmp_path: Path) -> None:
    synthqa = str(Path(sys.executable).parent / "synthqa")
    source = tmp_path / "doc.txt"
    source.write_text(SAMPLE[:400])
    command = [synthqa, "--target", tls_server.target, "--ca-file", str(pki.ca.cert),
               "generate", str(source), "--out", str(tmp_path / "out.jsonl"), "--num-pairs", "1"]
    allowed = subprocess.run(command, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "SYNTHQA_TOKEN": TOKENS[0]})
    assert allowed.returncode == 0, allowed.stderr
    refused = subprocess.run(command, capture_output=True, text=True, timeout=300,
                             env={k: v for k, v in os.environ.items() if k != "SYNTHQA_TOKEN"})
    assert refused.returncode == 1 and "bearer token" in refused.stderr


def test_mutual_tls_lets_in_only_certificates_of_its_ca(mtls_server: ServerProcess,
                                                        pki: Pki) -> None:
    target = mtls_server.target
    assert server_info_code(target, Credentials(
        ca_file=pki.ca.cert, cert_file=pki.client.cert, key_file=pki.client.key)) \
        == grpc.StatusCode.OK
    for refused in (Credentials(ca_file=pki.ca.cert),  # no client certificate
                    Credentials(ca_file=pki.ca.cert, cert_file=pki.rogue_client.cert,
                                key_file=pki.rogue_client.key),  # one of another CA
                    Credentials()):  # plaintext
        assert server_info_code(target, refused) == grpc.StatusCode.UNAVAILABLE


def test_health_port_answers_probes_in_plaintext_and_nothing_else(
        mtls_server: ServerProcess) -> None:
    """kubelet's gRPC probes can do neither TLS nor client certificates."""
    port = mtls_server.extra_args[mtls_server.extra_args.index("--health-port") + 1]
    health_target = f"127.0.0.1:{port}"
    assert health_status(health_target, timeout=10) == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(health_target) as channel:
        info = channel.unary_unary(f"/{SERVICE}/GetServerInfo")
        with pytest.raises(grpc.RpcError) as refused:
            info(b"", timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # The main port still wants a client certificate.
    assert health_status(mtls_server.target, timeout=5) is None


def served_certificate(target: str, pki: Pki) -> bytes:
    """The certificate a new connection is shown, in DER."""
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(pki.client.cert, pki.client.key)
    context.set_alpn_protocols(["h2"])
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def test_sighup_rotates_the_certificate_without_dropping_a_call(
    mtls_server: ServerProcess, pki: Pki
) -> None:
    cert_path = Path(mtls_server.extra_args[mtls_server.extra_args.index("--tls-cert-file") + 1])
    key_path = Path(mtls_server.extra_args[mtls_server.extra_args.index("--tls-key-file") + 1])
    before = served_certificate(mtls_server.target, pki)
    credentials = Credentials(ca_file=pki.ca.cert, cert_file=pki.client.cert,
                              key_file=pki.client.key)
    with SynthQAClient(mtls_server.target, timeout=300, credentials=credentials) as client:
        rotated = False

        def documents() -> Iterator[Document]:
            nonlocal rotated
            yield Document("before", SAMPLE[:400])
            # Mid-call: a new certificate, then SIGHUP.
            fresh = pki.authority.issue("rotated", "synthqa rotated", server=True)
            cert_path.write_bytes(fresh.cert.read_bytes())
            key_path.write_bytes(fresh.key.read_bytes())
            assert mtls_server.process is not None
            mtls_server.process.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            rotated = True
            yield Document("after", SAMPLE[400:800])

        events = list(client.generate(documents(), num_pairs=1))
    assert rotated
    completed = {e.document_completed.document_id for e in events
                 if e.WhichOneof("event") == "document_completed"}
    assert completed == {"before", "after"}, "the open call went on across the reload"
    after = served_certificate(mtls_server.target, pki)
    assert after != before and after == ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    assert mtls_server.process is not None and mtls_server.process.poll() is None
    assert "SIGHUP: TLS files read again" in mtls_server.log_path.read_text()
