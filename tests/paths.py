"""Where the tests find the repository and the tiny model."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = REPO / ".cache" / "tiny-model"
