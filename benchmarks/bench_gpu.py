"""``make bench-gpu``: the fine-tuning recipes and the inference modes on Phi-3-mini's
architecture (random weights, no download), on a CUDA GPU, through the steps' own code.

    uv run python benchmarks/bench_gpu.py [--steps 20] [--output docs/benchmarks.md]

Per recipe (yoda_fine_tuning.recipes): tokens/s, s/step, peak GPU memory, final loss finite.
Inference: 4-bit + adapter against a float16 base with the adapter merged, batch 16/32/64:
samples/s, peak memory, and whether the greedy answers agree with the first mode's. The table is
printed and written to docs/benchmarks.md (section "GPU"), with the date, the GPU and the command.
On a machine without CUDA it stops at once with one line.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FULL_DATA = ROOT.parent / "shared" / "data" / "yoda_sentences.csv"
SECTION = "## GPU: Phi-3-mini's architecture (make bench-gpu)"


def require_cuda() -> str:
    """The GPU's name, or exit 2 with one line."""
    import torch

    if not torch.cuda.is_available():
        print("error: make bench-gpu needs a CUDA GPU and none is visible (it measures "
              "Phi-3-mini's architecture with random weights)", file=sys.stderr)  # fmt: skip
        sys.exit(2)
    return str(torch.cuda.get_device_name(0))


def _free() -> None:
    import torch

    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def train_recipes(base: Path, train: Path, steps: int) -> list[dict[str, Any]]:
    """Each recipe for ``steps`` optimizer steps through ``fine_tune``."""
    import dataclasses

    from yoda_fine_tuning.recipes import RECIPES
    from yoda_fine_tuning.train import fine_tune

    rows = []
    with tempfile.TemporaryDirectory(prefix="yoda-gpu-") as tmp:
        for name, recipe in RECIPES.items():
            _free()
            hp = dataclasses.replace(recipe, max_steps=steps, logging_steps=steps)
            try:
                result = fine_tune(train, Path(tmp) / name / "model", Path(tmp) / name / "m",
                                   base_model=str(base), hp=hp)  # fmt: skip
            except Exception as error:  # out of memory and the like: a figure too
                rows.append({"recipe": name, "error": " ".join(str(error).split())[:120]})
                continue
            metrics = result.metrics
            seconds = metrics["train_runtime_s"]
            rows.append({
                "recipe": name,
                "tokens_per_s": steps * hp.tokens_per_step() / seconds,
                "s_per_step": seconds / steps,
                "peak_gib": metrics["peak_memory_mb"] / 1024,
                "loss_finite": math.isfinite(metrics["train_loss"]),
                "loss": metrics["train_loss"],
                "model": Path(tmp) / name / "model",
            })  # fmt: skip
            del result
        adapter = next((r["model"] for r in rows if r.get("recipe") == "default" and "model" in r),
                       None)  # fmt: skip
        inference = infer_modes(adapter, train.with_name("test.jsonl")) if adapter else []
    return rows + inference


def infer_modes(
    adapter: Path, test: Path, batches: tuple[int, ...] = (16, 32, 64)
) -> list[dict[str, Any]]:
    """4-bit + adapter vs float16 base with the adapter merged, at several batch sizes."""
    import torch

    from yoda_inference.model import adapter_base_model, load_finetuned, merge_adapter
    from yoda_inference.predict import GenerationParameters, generate_answers, user_and_reference
    from yoda_step_io.conversations import read_conversations

    users = [user_and_reference(c, str(test))[0] for c in read_conversations(test)]
    rows, reference = [], None
    for mode, four_bit, merge in (("4-bit + adapter", True, False),
                                  ("float16, adapter merged", False, True)):  # fmt: skip
        _free()
        model, tokenizer = load_finetuned(adapter, adapter_base_model(adapter), four_bit=four_bit,
                                          compute_dtype="float16")  # fmt: skip
        if merge:
            model = merge_adapter(model, four_bit)
        for batch in batches:
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            params = GenerationParameters(batch_size=batch)
            answers = generate_answers(model, tokenizer, users, params, "bench").texts
            seconds = time.perf_counter() - start
            reference = reference or answers
            rows.append({"mode": mode, "batch": batch, "samples_per_s": len(users) / seconds,
                         "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                         "agree": sum(a == b for a, b in zip(answers, reference, strict=True)),
                         "rows": len(users)})  # fmt: skip
        del model
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| recipe / mode | tokens/s or samples/s | s/step | peak GPU memory | check |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['recipe']} | failed: {row['error']} | | | |")
        elif "recipe" in row:
            finite = "finite" if row["loss_finite"] else "NOT finite"
            lines.append(f"| {row['recipe']} | {row['tokens_per_s']:.0f} tokens/s | "
                         f"{row['s_per_step']:.2f} | {row['peak_gib']:.1f} GiB | loss "
                         f"{row['loss']:.3f} ({finite}) |")  # fmt: skip
        else:
            lines.append(f"| {row['mode']}, batch {row['batch']} | {row['samples_per_s']:.1f} "
                         f"samples/s | | {row['peak_gib']:.1f} GiB | {row['agree']}/{row['rows']} "
                         "answers as the first mode |")  # fmt: skip
    return "\n".join(lines)


def write_section(path: Path, gpu: str, text: str, command: str) -> None:
    """Replace (or add) the GPU section of docs/benchmarks.md; the sections after it stay."""
    existing = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    before, _, rest = existing.partition(SECTION)
    after = rest[rest.index("\n## ") :] if "\n## " in rest else ""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(f"{before.rstrip()}\n\n{SECTION}\n\n`{command}` on {stamp}, {gpu}.\n\n"
                    f"{text}\n{after}", encoding="utf-8")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per recipe")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    gpu = require_cuda()

    from yoda_devmodels.phi3_mini import make_random_phi3_mini
    from yoda_devmodels.tiny_model import make_tiny_model

    from yoda_data_transformation import transform
    from yoda_pipeline.settings import sample_data_path

    with tempfile.TemporaryDirectory(prefix="yoda-gpu-") as tmp:
        work = Path(tmp)
        tokenizer = make_tiny_model(work / "tiny")
        base = make_random_phi3_mini(work / "phi3-mini", tokenizer)
        source = FULL_DATA if FULL_DATA.is_file() else sample_data_path()
        transform(str(source), work / "train.jsonl", work / "test.jsonl")
        text = table(train_recipes(base, work / "train.jsonl", args.steps))
    print(text)
    write_section(args.output, gpu, text, f"make bench-gpu (--steps {args.steps})")


if __name__ == "__main__":
    main()
