"""From a run's output lines to a dataset: `synthqa export` (run.py)."""

from .errors import ExportError
from .formats import FORMATS, REASONED_ANSWER, SUMMARY_INSTRUCTION
from .run import (
    DEFAULT_SPLIT,
    ExportResult,
    ExportSettings,
    export_run,
    parse_split,
    read_manifest,
    split_of,
)
from .run_lines import read_lines

__all__ = ["DEFAULT_SPLIT", "FORMATS", "REASONED_ANSWER", "SUMMARY_INSTRUCTION", "ExportError",
           "ExportResult", "ExportSettings", "export_run", "parse_split",
           "read_lines", "read_manifest", "split_of"]
