"""No request can take the engine down: the requests that once did, sent to the shared server,
which must still serve afterwards."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health_pb2

from synthqa.client import SynthQAClient

from .helpers import SAMPLE
from .serverproc import ServerProcess, health_status


def test_concurrent_seeded_calls_whose_prompts_share_engine_steps(server: ServerProcess) -> None:
    # Several full-size prompts at once overflow one engine step; with chunked prefill a
    # seeded prompt split across steps crashed vLLM's CPU build.
    texts = [(SAMPLE[i * 1800:] + SAMPLE[:i * 1800]) * 2 for i in range(3)]

    def call(text: str) -> list:
        with SynthQAClient(server.target, timeout=600) as client:
            return list(client.generate_document(text, num_pairs=2, max_generation_tokens=256,
                                                 seed=11))

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(call, texts))
    for events in results:
        failures = [e.chunk_failed for e in events if e.HasField("chunk_failed")]
        # A random model may run out of tokens on non-ASCII output; nothing else may fail.
        assert all(f.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
                   for f in failures), [f.error.message for f in failures]
        done = [e.document_completed for e in events if e.HasField("document_completed")]
        assert len(done) == 1 and done[0].chunk_count >= 2
    assert health_status(server.target) == health_pb2.HealthCheckResponse.SERVING
