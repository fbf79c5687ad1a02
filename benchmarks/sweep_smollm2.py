"""A measured sweep of CPU recipes for SmolLM2-135M-Instruct, the real small model offline:
for each recipe the real fine-tuning, inference and evaluation code on the full data set.

    uv run python benchmarks/sweep_smollm2.py --steps 30 --learning-rate 2e-3 [--rank 8] \
        [--batch 16] [--seq 64] [--max-new-tokens 32] [--output build/sweep.jsonl]

Prints one Markdown row (the table in docs/benchmarks.md): minutes, fine-tuned / base / echo
ROUGE-L on the test split, s/step, tokens/s and the share of this machine's float32 matmul peak
(model FLOPs per step taken as 4 x parameters x tokens: the forward pass and the backward pass
through the frozen base; LoRA's own weights are a rounding error).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_DATA = ROOT.parent / "shared" / "data" / "yoda_sentences.csv"


def matmul_peak_gflops() -> float:
    """This machine's float32 matmul rate (torch.mm, 1024² and 2048²): the best of a few."""
    import torch

    best = 0.0
    for size in (1024, 2048):
        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)
        for _ in range(3):
            start = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--logging-steps", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--gradient-checkpointing", choices=("true", "false"), default="true")
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "sweep.jsonl")
    args = parser.parse_args()

    from yoda_devmodels.smollm2 import ensure_smollm2

    from yoda_data_transformation.transform import transform
    from yoda_evaluation.evaluate import evaluate_predictions
    from yoda_fine_tuning.hyperparams import HyperParameters
    from yoda_fine_tuning.train import fine_tune
    from yoda_inference.predict import GenerationParameters, predict_test_set
    from yoda_step_io import setup_logging

    setup_logging()
    base = ensure_smollm2(ROOT / "build" / "smollm2-135m-instruct")
    peak = matmul_peak_gflops()
    hp = HyperParameters(
        quantization="auto", lora_r=args.rank, lora_alpha=2 * args.rank, max_steps=args.steps,
        learning_rate=args.learning_rate, per_device_train_batch_size=args.batch,
        max_seq_length=args.seq, logging_steps=args.logging_steps,
        gradient_checkpointing=args.gradient_checkpointing == "true",
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="yoda-sweep-") as folder:
        out = Path(folder)
        start = time.perf_counter()
        transform(str(FULL_DATA), out / "train.jsonl", out / "test.jsonl")
        tuned = fine_tune(out / "train.jsonl", out / "model", out / "metrics",
                          base_model=str(base), hp=hp)  # fmt: skip
        trained = time.perf_counter()
        generation = GenerationParameters(max_new_tokens=args.max_new_tokens)
        predicted = predict_test_set(out / "model", out / "test.jsonl", out / "p.csv",
                                     base_predictions_path=out / "b.csv", quantization="auto",
                                     params=generation)  # fmt: skip
        answered = time.perf_counter()
        result = evaluate_predictions(out / "p.csv", out / "r.csv", out / "e", ["rouge_l"],
                                      base_predictions_path=out / "b.csv")  # fmt: skip
        total = time.perf_counter() - start
    agg = result.aggregates
    seconds_per_step = tuned.metrics["train_runtime_s"] / args.steps
    tokens_per_s = hp.tokens_per_step() / seconds_per_step
    parameters = tuned.metrics["total_params"]
    share = 4 * parameters * tokens_per_s / 1e9 / peak
    row = {
        "steps": args.steps, "learning_rate": args.learning_rate, "rank": args.rank,
        "batch": args.batch, "seq": args.seq, "gradient_checkpointing": args.gradient_checkpointing,
        "minutes_total": total / 60, "minutes_training": (trained - start) / 60,
        "minutes_inference": (answered - trained) / 60,
        "rouge_l": agg["rouge_l_mean"], "base_rouge_l": agg["base_rouge_l_mean"],
        "echo_rouge_l": agg["echo_rouge_l_mean"], "empty": agg.get("empty_answers"),
        "cut": predicted.metadata["cut_answers"], "rows": predicted.rows,
        "s_per_step": seconds_per_step, "tokens_per_s": tokens_per_s,
        "peak_gflops": peak, "share_of_peak": share,
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    print(
        f"| {args.steps} steps, lr {args.learning_rate:g}, r={args.rank}, batch {args.batch} x "
        f"{args.seq} tokens, checkpointing {args.gradient_checkpointing} | {total / 60:.1f} | "
        f"{row['rouge_l']:.3f} / {row['base_rouge_l']:.3f} / {row['echo_rouge_l']:.3f} | "
        f"{row['empty']:.0f} / {row['cut']} | "
        f"{seconds_per_step:.1f} | {tokens_per_s:.0f} | {100 * share:.0f} % of {peak:.0f} GFLOP/s |"
    )


if __name__ == "__main__":
    main()
