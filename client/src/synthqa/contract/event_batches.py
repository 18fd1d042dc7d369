"""EventBatch on the wire: the call metadata with which a reader takes several events in one
message, and its bounds. The server sends batches only to a call that sets it."""

from __future__ import annotations

EVENTS_PER_MESSAGE_KEY = "synthqa-events-per-message"
MAX_EVENTS_PER_MESSAGE = 1024
