"""Why a file's text cannot be sent."""


class ExtractionError(Exception):
    """The file is named and skipped with this reason (encrypted, no text layer, corrupt...)."""
