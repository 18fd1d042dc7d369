"""Where the tests find the repository, the tiny model and its LoRA adapter."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = REPO / ".cache" / "tiny-model"
TINY_LORA = REPO / ".cache" / "tiny-lora"
