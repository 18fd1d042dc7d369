"""Build a LoRA adapter for the tiny offline model, for the tests of per-call adapters.

peft wraps the tiny model with a rank-8 LoRA on the attention projections; its B matrices,
which peft starts at zero (an adapter that changes nothing), get seeded random values, so the
adapter really changes the model's outputs. Nothing is downloaded; the same script gives the
same files every time.

Usage: python scripts/make_tiny_lora.py TINY_MODEL_DIR OUTPUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

SEED = 4321
RANK = 8


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base, out = Path(argv[1]), Path(argv[2])
    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32)
    config = LoraConfig(r=RANK, lora_alpha=2 * RANK, lora_dropout=0.0, bias="none",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        task_type="CAUSAL_LM")
    adapted = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    out.mkdir(parents=True, exist_ok=True)
    adapted.save_pretrained(out, safe_serialization=True)
    print(f"tiny LoRA adapter written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
