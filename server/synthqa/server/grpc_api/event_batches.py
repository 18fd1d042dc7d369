"""Several events in one message, for a call that asks for it in its metadata.

At saturation the writer is what events wait for: every message costs gRPC a write, a
completion and a wake-up of the event loop (and the reader as much again), so events that
are ready together go out together. Nothing waits to fill a batch; a call that does not ask
gets one event per message, as every client before EventBatch expects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from synthqa.contract.event_batches import EVENTS_PER_MESSAGE_KEY, MAX_EVENTS_PER_MESSAGE

from ..pipeline.errors import InvalidArgument
from ..pipeline.events import GenerationEvent
from .convert import Response, event_to_proto

# Far under gRPC's default 4 MiB receive limit, whatever the records hold.
MAX_BATCH_BYTES = 256 * 1024

_FIELD = f"metadata.{EVENTS_PER_MESSAGE_KEY}"


def events_per_message(metadata: Iterable[tuple[str, str | bytes]] | None) -> int:
    """The most events the caller takes in one message: 1 unless its metadata says more."""
    values = [value for key, value in metadata or () if key == EVENTS_PER_MESSAGE_KEY]
    if not values:
        return 1
    if len(values) > 1:
        raise InvalidArgument.single(_FIELD, "must be given once")
    text = values[0].decode("ascii", "replace") if isinstance(values[0], bytes) else values[0]
    digits = text.strip()
    significant = digits.lstrip("0") or "0"
    # Length first: int() of thousands of digits is slow, and refused past 4,300.
    if not (digits.isascii() and digits.isdigit() and len(significant) <= 4
            and 1 <= int(significant) <= MAX_EVENTS_PER_MESSAGE):
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise InvalidArgument.single(
            _FIELD, f"must be a whole number from 1 to {MAX_EVENTS_PER_MESSAGE}, got {shown!r}")
    return int(significant)


def messages_of(
    events: list[GenerationEvent], response_type: type[Response]
) -> Iterator[tuple[Response, list[GenerationEvent]]]:
    """`events` as messages, each with the events it carries: one alone, several in batches
    whose events add up to at most MAX_BATCH_BYTES (an event larger than that goes alone)."""
    if len(events) == 1:
        yield event_to_proto(events[0], response_type), events
        return
    group: list[Response] = []
    start = size = 0
    for index, event in enumerate(events):
        message = event_to_proto(event, response_type)
        message_size = message.ByteSize()
        if group and size + message_size > MAX_BATCH_BYTES:
            yield _one_message(group, response_type), events[start:index]
            group, start, size = [], index, 0
        group.append(message)
        size += message_size
    yield _one_message(group, response_type), events[start:]


def _one_message(group: list[Response], response_type: type[Response]) -> Response:
    if len(group) == 1:
        return group[0]
    message = response_type()
    message.batch.events.extend(group)
    return message
