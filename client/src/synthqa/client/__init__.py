"""Typed clients for the synthqa service.

    from synthqa.client import SynthQAClient, Document

    with SynthQAClient("localhost:50051") as client:
        for event in client.generate([Document("a", text)], num_pairs=3):
            if event.HasField("qa_pair"):
                print(event.qa_pair.question, event.qa_pair.answer)

Events are `synthqa.v1.synthqa_pb2.GenerateResponse` messages (typed by the bundled .pyi).
"""

from .aio import AsyncSynthQAClient
from .channel import Credentials
from .documents import Document
from .errors import FieldViolation, SynthQAError
from .events import pair_record
from .options import generation_options
from .sync import SynthQAClient

__all__ = [
    "AsyncSynthQAClient",
    "Credentials",
    "Document",
    "FieldViolation",
    "SynthQAClient",
    "SynthQAError",
    "generation_options",
    "pair_record",
]
