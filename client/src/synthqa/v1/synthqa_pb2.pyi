from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_ABORT: _ClassVar[FinishReason]
    FINISH_REASON_ERROR: _ClassVar[FinishReason]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_ABORT: FinishReason
FINISH_REASON_ERROR: FinishReason

class GenerationOptions(_message.Message):
    __slots__ = ("num_pairs", "max_generation_tokens", "temperature", "top_p", "chunk_overlap_tokens", "max_chunk_tokens", "seed")
    NUM_PAIRS_FIELD_NUMBER: _ClassVar[int]
    MAX_GENERATION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    CHUNK_OVERLAP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    num_pairs: int
    max_generation_tokens: int
    temperature: float
    top_p: float
    chunk_overlap_tokens: int
    max_chunk_tokens: int
    seed: int
    def __init__(self, num_pairs: _Optional[int] = ..., max_generation_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., chunk_overlap_tokens: _Optional[int] = ..., max_chunk_tokens: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("index", "text", "token_count", "char_start", "char_end")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHAR_START_FIELD_NUMBER: _ClassVar[int]
    CHAR_END_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    token_count: int
    char_start: int
    char_end: int
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., token_count: _Optional[int] = ..., char_start: _Optional[int] = ..., char_end: _Optional[int] = ...) -> None: ...

class DocumentPart(_message.Message):
    __slots__ = ("document_id", "text", "more_follows")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MORE_FOLLOWS_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    text: str
    more_follows: bool
    def __init__(self, document_id: _Optional[str] = ..., text: _Optional[str] = ..., more_follows: _Optional[bool] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_message_bytes", "max_document_chars", "max_num_pairs", "max_in_flight_chunks_per_call", "max_in_flight_chunks", "max_chunks_per_document")
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_DOCUMENT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_PAIRS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_CHUNKS_PER_CALL_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNKS_PER_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    max_message_bytes: int
    max_document_chars: int
    max_num_pairs: int
    max_in_flight_chunks_per_call: int
    max_in_flight_chunks: int
    max_chunks_per_document: int
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_document_chars: _Optional[int] = ..., max_num_pairs: _Optional[int] = ..., max_in_flight_chunks_per_call: _Optional[int] = ..., max_in_flight_chunks: _Optional[int] = ..., max_chunks_per_document: _Optional[int] = ...) -> None: ...

class ServerLoad(_message.Message):
    __slots__ = ("active_calls", "in_flight_chunks", "engine_requests")
    ACTIVE_CALLS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    active_calls: int
    in_flight_chunks: int
    engine_requests: int
    def __init__(self, active_calls: _Optional[int] = ..., in_flight_chunks: _Optional[int] = ..., engine_requests: _Optional[int] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("model", "max_model_len", "max_chunk_tokens", "defaults", "version", "limits", "load", "prompt_template_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_MODEL_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    max_model_len: int
    max_chunk_tokens: int
    defaults: GenerationOptions
    version: str
    limits: Limits
    load: ServerLoad
    prompt_template_tokens: int
    def __init__(self, model: _Optional[str] = ..., max_model_len: _Optional[int] = ..., max_chunk_tokens: _Optional[int] = ..., defaults: _Optional[_Union[GenerationOptions, _Mapping]] = ..., version: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., load: _Optional[_Union[ServerLoad, _Mapping]] = ..., prompt_template_tokens: _Optional[int] = ...) -> None: ...

class ChunkDocumentRequest(_message.Message):
    __slots__ = ("text", "options")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    text: str
    options: GenerationOptions
    def __init__(self, text: _Optional[str] = ..., options: _Optional[_Union[GenerationOptions, _Mapping]] = ...) -> None: ...

class ChunkDocumentResponse(_message.Message):
    __slots__ = ("chunks", "token_count", "chunk_token_budget")
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    token_count: int
    chunk_token_budget: int
    def __init__(self, chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ..., token_count: _Optional[int] = ..., chunk_token_budget: _Optional[int] = ...) -> None: ...

class GenerateDocumentRequest(_message.Message):
    __slots__ = ("document_id", "text", "options")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    text: str
    options: GenerationOptions
    def __init__(self, document_id: _Optional[str] = ..., text: _Optional[str] = ..., options: _Optional[_Union[GenerationOptions, _Mapping]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("options", "document")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    options: GenerationOptions
    document: DocumentPart
    def __init__(self, options: _Optional[_Union[GenerationOptions, _Mapping]] = ..., document: _Optional[_Union[DocumentPart, _Mapping]] = ...) -> None: ...

class ChunkStarted(_message.Message):
    __slots__ = ("document_id", "chunk_index", "chunk_count", "token_count", "char_start", "char_end")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHAR_START_FIELD_NUMBER: _ClassVar[int]
    CHAR_END_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    chunk_index: int
    chunk_count: int
    token_count: int
    char_start: int
    char_end: int
    def __init__(self, document_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., chunk_count: _Optional[int] = ..., token_count: _Optional[int] = ..., char_start: _Optional[int] = ..., char_end: _Optional[int] = ...) -> None: ...

class QaPair(_message.Message):
    __slots__ = ("document_id", "chunk_index", "pair_index", "question", "answer")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    PAIR_INDEX_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    chunk_index: int
    pair_index: int
    question: str
    answer: str
    def __init__(self, document_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., pair_index: _Optional[int] = ..., question: _Optional[str] = ..., answer: _Optional[str] = ...) -> None: ...

class ChunkCompleted(_message.Message):
    __slots__ = ("document_id", "chunk_index", "prompt_token_count", "generated_token_count", "finish_reason", "pair_count")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PAIR_COUNT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    chunk_index: int
    prompt_token_count: int
    generated_token_count: int
    finish_reason: FinishReason
    pair_count: int
    def __init__(self, document_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., prompt_token_count: _Optional[int] = ..., generated_token_count: _Optional[int] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., pair_count: _Optional[int] = ...) -> None: ...

class ChunkFailed(_message.Message):
    __slots__ = ("document_id", "chunk_index", "error", "pair_count", "generated_token_count", "finish_reason")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PAIR_COUNT_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    chunk_index: int
    error: _status_pb2.Status
    pair_count: int
    generated_token_count: int
    finish_reason: FinishReason
    def __init__(self, document_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., pair_count: _Optional[int] = ..., generated_token_count: _Optional[int] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ...) -> None: ...

class DocumentCompleted(_message.Message):
    __slots__ = ("document_id", "chunk_count", "completed_chunk_count", "failed_chunk_count", "pair_count", "token_count")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAIR_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    chunk_count: int
    completed_chunk_count: int
    failed_chunk_count: int
    pair_count: int
    token_count: int
    def __init__(self, document_id: _Optional[str] = ..., chunk_count: _Optional[int] = ..., completed_chunk_count: _Optional[int] = ..., failed_chunk_count: _Optional[int] = ..., pair_count: _Optional[int] = ..., token_count: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("chunk_started", "qa_pair", "chunk_completed", "chunk_failed", "document_completed")
    CHUNK_STARTED_FIELD_NUMBER: _ClassVar[int]
    QA_PAIR_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FAILED_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    chunk_started: ChunkStarted
    qa_pair: QaPair
    chunk_completed: ChunkCompleted
    chunk_failed: ChunkFailed
    document_completed: DocumentCompleted
    def __init__(self, chunk_started: _Optional[_Union[ChunkStarted, _Mapping]] = ..., qa_pair: _Optional[_Union[QaPair, _Mapping]] = ..., chunk_completed: _Optional[_Union[ChunkCompleted, _Mapping]] = ..., chunk_failed: _Optional[_Union[ChunkFailed, _Mapping]] = ..., document_completed: _Optional[_Union[DocumentCompleted, _Mapping]] = ...) -> None: ...

class GenerateDocumentResponse(_message.Message):
    __slots__ = ("chunk_started", "qa_pair", "chunk_completed", "chunk_failed", "document_completed")
    CHUNK_STARTED_FIELD_NUMBER: _ClassVar[int]
    QA_PAIR_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FAILED_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    chunk_started: ChunkStarted
    qa_pair: QaPair
    chunk_completed: ChunkCompleted
    chunk_failed: ChunkFailed
    document_completed: DocumentCompleted
    def __init__(self, chunk_started: _Optional[_Union[ChunkStarted, _Mapping]] = ..., qa_pair: _Optional[_Union[QaPair, _Mapping]] = ..., chunk_completed: _Optional[_Union[ChunkCompleted, _Mapping]] = ..., chunk_failed: _Optional[_Union[ChunkFailed, _Mapping]] = ..., document_completed: _Optional[_Union[DocumentCompleted, _Mapping]] = ...) -> None: ...
