"""Build the tiny offline model that tests and the default run use.

A Llama-shaped model with seeded random weights and a byte-level BPE tokenizer with a chat
template. Nothing is downloaded; the same script gives the same files every time. The weights
are random, so the model's text is noise, but it exercises the real engine, tokenizer, chat
template and structured-output paths.

Usage: python scripts/make_tiny_model.py OUTPUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Single-threaded BPE training keeps the merges identical run to run.
os.environ.setdefault("RAYON_NUM_THREADS", "1")

BOS, EOS, START_HEADER, END_HEADER = "<|bos|>", "<|eot|>", "<|header|>", "<|/header|>"
PAD = "<|pad|>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|header|>{{ message['role'] }}<|/header|>\n{{ message['content'] }}<|eot|>"
    "{% endfor %}{% if add_generation_prompt %}<|header|>assistant<|/header|>\n{% endif %}"
)
SEED = 1234
VOCAB_SIZE = 2048
# head_dim 64 (hidden 256 / 4 heads): CPU attention rejects head_dim 16.
MODEL_SHAPE = dict(
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)


def training_corpus(repo_root: Path) -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in sorted((repo_root / "samples").glob("*.txt"))]
    texts.append(
        'Questions and answers as JSON: {"pairs":[{"question":"What is it?","answer":"It is."}]}'
    )
    return texts


def build_tokenizer(corpus: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS, START_HEADER, END_HEADER],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
    )


def build_model(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
        **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config)
    return model.to(torch.bfloat16)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    repo_root = Path(__file__).resolve().parent.parent
    tokenizer = build_tokenizer(training_corpus(repo_root))
    model = build_model(tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    (out / "synthqa-tiny-model.json").write_text(
        json.dumps({"seed": SEED, "vocab_size": len(tokenizer), **MODEL_SHAPE}, indent=2) + "\n"
    )
    print(f"tiny model written to {out} ({len(tokenizer)} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
