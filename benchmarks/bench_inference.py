"""Benchmark: batched vs one-at-a-time greedy generation on the same model and rows (CPU).

    uv run python benchmarks/bench_inference.py [--rows 64] [--batch-size 16] [--max-new-tokens 32]

Uses the tiny Phi-3 (generated in a temp dir) with a LoRA adapter, and the user turns of the full
public data set where ``../shared/data/yoda_sentences.csv`` exists (else the embedded sample).
Prints samples/s for both modes and their ratio; figures are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from yoda_fine_tuning.tiny_model import make_tiny_model
from yoda_inference import build_prompt, generate_batch
from yoda_pipeline.settings import sample_data_path

FULL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yoda_sentences.csv"


def sentences(n: int) -> tuple[list[str], str]:
    source = FULL_DATA if FULL_DATA.is_file() else sample_data_path()
    with source.open(encoding="utf-8") as handle:
        rows = [row["sentence"] for row in csv.DictReader(handle)]
    return [rows[i % len(rows)] for i in range(n)], source.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny_model(Path(tmp) / "tiny")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        tokenizer.pad_token = tokenizer.unk_token
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        config = LoraConfig(r=8, lora_alpha=16, target_modules=["qkv_proj", "o_proj"],
                            init_lora_weights=False)  # fmt: skip
        model = get_peft_model(base, config).eval()
        texts, source = sentences(args.rows)
        prompts = [build_prompt(tokenizer, t) for t in texts]
        kwargs = {"max_new_tokens": args.max_new_tokens}
        generate_batch(model, tokenizer, prompts[:2], **kwargs)  # warm-up

        start = time.perf_counter()
        sequential = [generate_batch(model, tokenizer, [p], **kwargs)[0][0] for p in prompts]
        sequential_s = time.perf_counter() - start

        start = time.perf_counter()
        batched: list[str] = []
        for i in range(0, len(prompts), args.batch_size):
            batched += generate_batch(model, tokenizer, prompts[i : i + args.batch_size], **kwargs)[
                0
            ]
        batched_s = time.perf_counter() - start

    same = sum(a == b for a, b in zip(sequential, batched, strict=True))
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; rows: {args.rows} from {source}; "
          f"max_new_tokens {args.max_new_tokens}")  # fmt: skip
    print(f"one at a time : {args.rows / sequential_s:8.1f} samples/s ({sequential_s:.2f} s)")
    print(
        f"batch of {args.batch_size:<5}: {args.rows / batched_s:8.1f} samples/s ({batched_s:.2f} s)"
    )
    print(
        f"speed-up      : {sequential_s / batched_s:8.1f}x; "
        f"identical greedy outputs: {same}/{args.rows}"
    )


if __name__ == "__main__":
    main()
