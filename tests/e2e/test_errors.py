"""Bad input gets INVALID_ARGUMENT (or RESOURCE_EXHAUSTED) with field details, and the server
keeps serving."""

from __future__ import annotations

import grpc
import pytest

from synthqa.client import Document, SynthQAClient, SynthQAError
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from .serverproc import ServerProcess

TEXT = "Augustin Fresnel presented a new kind of lens in 1822."


def options(**fields) -> pb.GenerateRequest:
    return pb.GenerateRequest(options=pb.GenerationOptions(**fields))


def part(document_id: str, text: str = TEXT, more_follows: bool = False,
         chunk_indexes: tuple[int, ...] = ()) -> pb.GenerateRequest:
    return pb.GenerateRequest(document=pb.DocumentPart(
        document_id=document_id, text=text, more_follows=more_follows,
        chunk_indexes=chunk_indexes))


def raw_generate(server: ServerProcess, requests: list[pb.GenerateRequest],
                 metadata: tuple[tuple[str, str], ...] = ()) -> SynthQAError:
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Generate(iter(requests), timeout=120, metadata=metadata))
    return SynthQAError.from_rpc_error(caught.value)


def fields_of(error: SynthQAError) -> list[str]:
    return [v.field for v in error.field_violations]


@pytest.fixture(autouse=True)
def server_keeps_serving(client: SynthQAClient):
    yield
    # After every bad request, real work still gets done.
    events = list(client.generate_document(TEXT, num_pairs=1))
    assert sum(e.HasField("qa_pair") for e in events) == 1


STREAM_CASES = {
    "document before options": ([part("a")], ["options"]),
    "options twice": ([options(), options()], ["options"]),
    "empty text": ([options(), part("a", "")], ["document.text"]),
    "whitespace-only text": ([options(), part("a", " \n\t  ")], ["document.text"]),
    "whitespace-only in parts": (
        [options(), part("a", "  ", True), part("a", "\n")], ["document.text"]),
    "empty document id": ([options(), part("")], ["document.document_id"]),
    "duplicate document id": ([options(), part("a"), part("a")], ["document.document_id"]),
    "part of a finished document": (
        [options(), part("a"), part("a", " more", True)], ["document.document_id"]),
    "stream ends mid-document": ([options(), part("a", TEXT, True)], ["document.more_follows"]),
    "message with neither": ([options(), pb.GenerateRequest()], ["document"]),
    "negative chunk index": ([options(), part("a", chunk_indexes=(0, -1))],
                             ["document.chunk_indexes"]),
    "chunk index past the last chunk": ([options(), part("a", chunk_indexes=(1,))],
                                        ["document.chunk_indexes"]),
    "zero pairs": ([options(num_pairs=0), part("a")], ["options.num_pairs"]),
    "negative pairs": ([options(num_pairs=-3), part("a")], ["options.num_pairs"]),
    "temperature too high": ([options(temperature=2.5), part("a")], ["options.temperature"]),
    "temperature negative": ([options(temperature=-0.1), part("a")], ["options.temperature"]),
    "top_p zero": ([options(top_p=0.0), part("a")], ["options.top_p"]),
    "top_p above one": ([options(top_p=1.01), part("a")], ["options.top_p"]),
    "overlap not below chunk size": (
        [options(max_chunk_tokens=64, chunk_overlap_tokens=64), part("a")],
        ["options.chunk_overlap_tokens"]),
    "too many pairs for the budget": (
        [options(num_pairs=30, max_generation_tokens=300), part("a")],
        ["options.max_generation_tokens"]),
    "chunk larger than the context": (
        [options(max_chunk_tokens=5000), part("a")], ["options.max_chunk_tokens"]),
    "several bad options at once": (
        [options(num_pairs=0, top_p=2.0), part("a")], ["options.num_pairs", "options.top_p"]),
}


@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_bad_stream_is_invalid_argument_with_fields(server: ServerProcess, case: str) -> None:
    requests, expected_fields = STREAM_CASES[case]
    error = raw_generate(server, requests)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error
    assert fields_of(error) == expected_fields
    assert all(v.description for v in error.field_violations)


def test_generate_document_rejects_blank_text(client: SynthQAClient) -> None:
    with pytest.raises(SynthQAError) as caught:
        list(client.generate_document("   "))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(caught.value) == ["text"]


def test_chunk_document_rejects_bad_options(client: SynthQAClient) -> None:
    with pytest.raises(SynthQAError) as caught:
        client.chunk(TEXT, max_chunk_tokens=10, chunk_overlap_tokens=20)
    assert fields_of(caught.value) == ["options.chunk_overlap_tokens"]


def test_document_over_the_size_limit_is_resource_exhausted(client: SynthQAClient) -> None:
    big = "Lighthouse keepers trimmed the wicks. " * 6000  # > 200,000 characters
    with pytest.raises(SynthQAError) as caught:
        list(client.generate([Document("big", big)], part_chars=50_000))
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    quota = caught.value.quota_violations
    assert quota and "200000" in quota[0].description
    with pytest.raises(SynthQAError) as caught:
        client.chunk(big)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_empty_stream_ends_cleanly(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        assert list(stub.Generate(iter([]), timeout=30)) == []
        assert list(stub.Generate(iter([options()]), timeout=30)) == []


def test_invalid_utf8_on_the_wire_is_invalid_argument(server: ServerProcess) -> None:
    # What a careless client in another language can send: a string field that is not UTF-8.
    options_message = pb.GenerateRequest(options=pb.GenerationOptions()).SerializeToString()
    document = b"\x0a\x01a" + b"\x12\x02\xff\xfe"  # DocumentPart{document_id: "a", text: FF FE}
    bad_message = b"\x12" + bytes([len(document)]) + document
    with grpc.insecure_channel(server.target) as channel:
        call = channel.stream_stream("/synthqa.v1.SynthQAService/Generate")
        with pytest.raises(grpc.RpcError) as caught:
            list(call(iter([options_message, bad_message]), timeout=60))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(SynthQAError.from_rpc_error(caught.value)) == ["request"]


# A string field that is not UTF-8 (bytes FF FE), on each unary RPC.
UNPARSABLE_UNARY = {
    "GenerateDocument": b"\x0a\x01a" + b"\x12\x02\xff\xfe",  # document_id "a", text FF FE
    "ChunkDocument": b"\x0a\x02\xff\xfe",  # text FF FE
}


@pytest.mark.parametrize("method", list(UNPARSABLE_UNARY))
def test_invalid_utf8_on_unary_rpcs_is_invalid_argument_without_a_traceback(
    server: ServerProcess, method: str
) -> None:
    log_before = server.log_path.read_text(errors="replace").count("Traceback")
    with grpc.insecure_channel(server.target) as channel:
        path = f"/synthqa.v1.SynthQAService/{method}"
        with pytest.raises(grpc.RpcError) as caught:
            if method == "ChunkDocument":
                channel.unary_unary(path)(UNPARSABLE_UNARY[method], timeout=60)
            else:
                list(channel.unary_stream(path)(UNPARSABLE_UNARY[method], timeout=60))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert fields_of(SynthQAError.from_rpc_error(caught.value)) == ["request"]
    assert server.log_path.read_text(errors="replace").count("Traceback") == log_before


def test_long_document_id_is_rejected_on_both_paths(client: SynthQAClient) -> None:
    with pytest.raises(SynthQAError) as caught:
        list(client.generate_document(TEXT, document_id="x" * 10_000))
    assert fields_of(caught.value) == ["document_id"]
    with pytest.raises(SynthQAError) as caught:
        list(client.generate([Document("y" * 257, TEXT)]))
    assert fields_of(caught.value) == ["document.document_id"]


def test_seed_minus_one_is_rejected(client: SynthQAClient) -> None:
    with pytest.raises(SynthQAError) as caught:
        list(client.generate_document(TEXT, seed=-1))
    assert fields_of(caught.value) == ["options.seed"]


def test_many_open_documents_hit_the_call_limit(server: ServerProcess) -> None:
    # Each part is under the 200,000-character limit; together the open documents are not.
    requests = [options()] + [part(f"open-{i}", "x" * 60_000, True) for i in range(4)]
    error = raw_generate(server, requests)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.quota_violations[0].field == "unfinished documents"


def test_too_many_chunks_per_document_is_resource_exhausted(client: SynthQAClient) -> None:
    text = "Lighthouse keepers trimmed the wicks every night. " * 2000
    with pytest.raises(SynthQAError) as caught:
        client.chunk(text, max_chunk_tokens=2, chunk_overlap_tokens=1)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_chunk_tokens" in caught.value.quota_violations[0].description


@pytest.mark.parametrize("value", ["0", "1025", "all"])
def test_a_bad_events_per_message_is_invalid_argument_naming_the_metadata(
    server: ServerProcess, value: str,
) -> None:
    error = raw_generate(server, [options(num_pairs=1), part("a")],
                         metadata=(("synthqa-events-per-message", value),))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(error) == ["metadata.synthqa-events-per-message"]
    assert repr(value) in error.field_violations[0].description
