"""Generation options as a request message, from keyword arguments named after the declared
options (`synthqa.contract.options`)."""

from __future__ import annotations

from typing import Any

from synthqa.contract.options import OptionValue, iter_set
from synthqa.v1 import synthqa_pb2 as pb


def generation_options(**values: OptionValue | None) -> pb.GenerationOptions:
    """Options with only the given fields set; None, like an absent keyword, takes the
    server's default. An unknown name raises TypeError."""
    chosen: dict[str, Any] = dict(iter_set(values))
    return pb.GenerationOptions(**chosen)
