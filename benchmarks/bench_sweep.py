"""``make bench-sweep``: a sweep of SmolLM2-135M-Instruct CPU recipes through the pipeline itself
(``make run-local BASE_MODEL=smollm2`` with ``sweep``), on the full public data set, then every
finished recipe's test-split ROUGE-L, measured after the champion was chosen (by validation
answer loss: the test split never chooses). One Markdown table, printed and written between the
sweep markers of docs/benchmarks.md.

    uv run python benchmarks/bench_sweep.py [--sweep JSON] [--output docs/benchmarks.md]

The recipes are overrides of the SmolLM2 CPU recipe (``yoda_pipeline.offline.SMOLLM2_CPU_RECIPE``);
they run one at a time (``YODA_SWEEP_PARALLELISM=1``: two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FULL_DATA = ROOT.parent / "shared" / "data" / "yoda_sentences.csv"
START, END = "<!-- sweep: start -->", "<!-- sweep: end -->"
#: The recipes compared, as overrides of today's CPU recipe (the champion of 2026-12-03, recipe
#: 5): the CPU recipe before it (30 packed 64-token steps at 2e-3, the loss on the whole text),
#: then the loss on the answers alone, unpacked, at 30 and 70 steps, with a cosine schedule.
BEFORE = {"max_steps": 30, "learning_rate": 2e-3, "max_seq_length": 64, "packing": True,
          "completion_only_loss": False}  # fmt: skip
RECIPES: list[dict[str, Any]] = [
    BEFORE,
    {"max_steps": 30, "learning_rate": 2e-3},
    {"max_steps": 70, "learning_rate": 2e-3},
    {"max_steps": 70, "learning_rate": 2e-3, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1},
    {},
]


def test_rouge_l(model: Path, test: Path, folder: Path) -> float:
    """A recipe's test-split ROUGE-L, by the inference and evaluation steps' own code."""
    from yoda_evaluation.evaluate import evaluate_predictions
    from yoda_inference.predict import GenerationParameters, predict_test_set

    predictions = folder / "predictions.csv"
    predict_test_set(model, test, predictions, quantization="auto",
                     params=GenerationParameters(max_new_tokens=32))  # fmt: skip
    result = evaluate_predictions(predictions, folder / "results.csv", folder / "scores",
                                  ["rouge_l"])  # fmt: skip
    return float(result.aggregates["rouge_l_mean"])


def table(rows: list[dict[str, Any]], rouge: dict[int, float]) -> list[str]:
    from yoda_evaluation.sweep import recipe_text

    lines = ["| # | recipe (over the CPU recipe) | validation answer loss | eval loss | train loss "
             "| steps | tokens/s | minutes | test ROUGE-L |", "|---" * 9 + "|"]  # fmt: skip
    for row in rows:
        mark = " **champion**" if row.get("champion") else ""
        if row.get("status") != "finished":
            lines.append(f"| {row['number']} | {recipe_text(row['recipe'])} | failed: "
                         f"{row.get('reason', '')} | | | | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {row['number']}{mark} | {recipe_text(row['recipe'])} | "
            f"{row['validation_answer_loss']:.4f} | {row['eval_loss']:.4f} | "
            f"{row['train_loss']:.4f} | {row['train_steps']:.0f} | "
            f"{row['tokens_per_second']:.0f} | {row['minutes']:.1f} | "
            f"{rouge[row['number']]:.3f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sweep", type=json.loads, default=RECIPES)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    from yoda_pipeline.offline import SMOLLM2_CPU_RECIPE, run_local
    from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings
    from yoda_step_io import setup_logging

    setup_logging()
    os.environ["YODA_SWEEP_PARALLELISM"] = "1"
    settings = PipelineSettings(image_lock=ROOT / LOCAL_IMAGE_LOCK, base_model="smollm2",
                                raw_data_uri=str(FULL_DATA), sweep=args.sweep,
                                local_runs_dir=ROOT / "build" / "sweep-runs")  # fmt: skip
    start = time.perf_counter()
    run = run_local(settings)
    minutes = (time.perf_counter() - start) / 60
    (outputs,) = run.glob("outputs/yoda-*")
    rows = json.loads((outputs / "champion-component" / "metrics" / "sweep.json").read_text())
    test = outputs / "data-transformation-component" / "test"
    rouge = {row["number"]: test_rouge_l(Path(row["model_uri"]), test, run / f"r{row['number']}")
             for row in rows if row.get("status") == "finished"}  # fmt: skip
    recipe = ", ".join(f"{k}={v}" for k, v in SMOLLM2_CPU_RECIPE.items())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        START,
        f"Measured by `make bench-sweep` ({stamp}, this machine's 2 cores, one recipe at a "
        f"time): {len(rows)} recipes in one `make run-local BASE_MODEL=smollm2` on the full data "
        f"set, {minutes:.0f} minutes in all. Each recipe is a set of overrides of the CPU recipe "
        f"({recipe}). The champion has the lowest validation answer loss; the test ROUGE-L of "
        "every recipe is measured afterwards, by the inference and evaluation steps' code.",
        "",
        *table(rows, rouge),
        END,
    ]
    print("\n".join(section))
    text = args.output.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    updated = pattern.sub(lambda _: "\n".join(section), text) if pattern.search(text) else (
        text.rstrip("\n") + "\n\n## A sweep of SmolLM2 CPU recipes (make bench-sweep)\n\n"
        + "\n".join(section) + "\n")  # fmt: skip
    args.output.write_text(updated, encoding="utf-8")


if __name__ == "__main__":
    main()
