"""Batched vs one-at-a-time greedy generation on the same model and rows (CPU).

Uses the tiny Phi-3 with a (randomly initialised, non-zero) LoRA adapter and the user turns of the
full public data set where ``../shared/data/yoda_sentences.csv`` exists (else the embedded
sample). Part of ``make bench`` (benchmarks/bench.py).
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path
from typing import Any

from yoda_pipeline.settings import sample_data_path

FULL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yoda_sentences.csv"


def sentences(n: int) -> tuple[list[str], str]:
    source = FULL_DATA if FULL_DATA.is_file() else sample_data_path()
    with source.open(encoding="utf-8") as handle:
        rows = [row["sentence"] for row in csv.DictReader(handle)]
    return [rows[i % len(rows)] for i in range(n)], source.name


def measure(rows: int = 64, batch_size: int = 16, max_new_tokens: int = 32) -> dict[str, Any]:
    """Samples/s one prompt at a time and ``batch_size`` at a time, and how many answers agree."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from yoda_devmodels.tiny_model import make_tiny_model

    from yoda_inference import build_prompt, generate_batch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny_model(Path(tmp) / "tiny")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        tokenizer.pad_token = tokenizer.unk_token
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        config = LoraConfig(r=8, lora_alpha=16, target_modules=["qkv_proj", "o_proj"],
                            init_lora_weights=False)  # fmt: skip
        model = get_peft_model(base, config).eval()
        texts, source = sentences(rows)
        prompts = [build_prompt(tokenizer, t) for t in texts]
        kwargs = {"max_new_tokens": max_new_tokens}
        generate_batch(model, tokenizer, prompts[:2], **kwargs)  # warm-up

        start = time.perf_counter()
        sequential = [generate_batch(model, tokenizer, [p], **kwargs)[0][0] for p in prompts]
        sequential_s = time.perf_counter() - start

        start = time.perf_counter()
        batched: list[str] = []
        for i in range(0, len(prompts), batch_size):
            batched += generate_batch(model, tokenizer, prompts[i : i + batch_size], **kwargs)[0]
        batched_s = time.perf_counter() - start
    return {
        "rows": rows,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "source": source,
        "sequential_per_s": rows / sequential_s,
        "batched_per_s": rows / batched_s,
        "identical": sum(a == b for a, b in zip(sequential, batched, strict=True)),
    }
