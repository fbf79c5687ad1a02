"""Phi-3-mini-4k-instruct's architecture with random weights: what `make bench-gpu` and
`make test-gpu` measure and exercise on a GPU without downloading the real weights.

The numbers are the model's public config (hidden 3072, 32 layers, 32 heads, intermediate 8192,
vocabulary 32064, a 4k context). The tokenizer is the tiny model's (its ids fit the vocabulary):
speed and memory depend on the shapes, not on what the tokens mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Phi-3-mini-4k-instruct's config.json, the fields that shape compute and memory.
PHI3_MINI = {
    "hidden_size": 3072,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "intermediate_size": 8192,
    "vocab_size": 32064,
    "max_position_embeddings": 4096,
    "original_max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 32000,
    "pad_token_id": 32000,
}


def phi3_mini_config() -> Any:
    """A ``Phi3Config`` with Phi-3-mini's shapes."""
    from transformers import Phi3Config

    return Phi3Config(**PHI3_MINI)


def parameter_count() -> int:
    """Parameters of the architecture, counted on the meta device (no memory is allocated)."""
    import torch
    from transformers import Phi3ForCausalLM

    with torch.device("meta"):
        model = Phi3ForCausalLM(phi3_mini_config())
    return sum(p.numel() for p in model.parameters())


def make_random_phi3_mini(output_dir: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """Write the architecture with random float16 weights and ``tokenizer_dir``'s tokenizer
    to ``output_dir`` (7.6 GB): a base model that `fine_tune` and inference load as any other."""
    import torch
    from transformers import AutoTokenizer, Phi3ForCausalLM

    from yoda_step_io import outputs_in_place

    torch.manual_seed(seed)
    model = Phi3ForCausalLM(phi3_mini_config()).to(torch.float16)
    with outputs_in_place(output_dir, inputs=[tokenizer_dir], owner="yoda-phi3-mini"):
        model.save_pretrained(output_dir, safe_serialization=True)
        AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(output_dir)
    return output_dir
