"""Generation options as a request message, from keyword arguments named after the declared
options (`synthqa.contract.options`)."""

from __future__ import annotations

from synthqa.contract.options import OptionArgument
from synthqa.contract.wire import options_message
from synthqa.v1 import synthqa_pb2 as pb


def generation_options(**values: OptionArgument | None) -> pb.GenerationOptions:
    """Options with only the given fields set; None, like an absent keyword, takes the
    server's default. An unknown name raises TypeError, a record shape or instructions mode
    not in the contract ValueError. `record_choices` takes a list of strings."""
    return options_message({name: tuple(value) if isinstance(value, list) else value
                            for name, value in values.items()})
