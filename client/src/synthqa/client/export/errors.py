"""The one error of the export: the run cannot be exported as asked."""


class ExportError(Exception):
    """The run cannot be exported as asked; the message says why."""
