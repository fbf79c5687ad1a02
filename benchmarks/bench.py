"""``make bench``: one table of where the offline loop's time goes, each figure beside what it is
compared with in the same run, printed and written to docs/benchmarks.md.

    uv run python benchmarks/bench.py [--output docs/benchmarks.md] [--no-full]

- ``make run-local`` per step (start / imports / load / work / exit), on the embedded sample and
  on the full public data set (``../shared/data/yoda_sentences.csv``, where present), beside the
  figures recorded before the speed work (issue #10, commit 8fad47f);
- the tiny model's generation (what a fresh clone's first run adds);
- generation batched vs one prompt at a time (benchmarks/bench_inference.py);
- evaluation with ragas vs rouge-score directly (benchmarks/bench_evaluation.py);
- fine-tuning tokens/s with packing on and off, and the inference step with and without the
  base model's answers (benchmarks/bench_run_local.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_evaluation
import bench_inference
import bench_run_local
from bench_gpu import SECTION as GPU_SECTION
from bench_run_local import TASKS, StepSplit

ROOT = Path(__file__).resolve().parents[1]
FULL_DATA = ROOT.parent / "shared" / "data" / "yoda_sentences.csv"
#: Measured before the speed work on this machine kind (issue #10, commit 8fad47f): seconds.
BEFORE = {
    "run-local": 72.0,
    "tiny model": 10.0,
    "data-transformation-component": (1.8, "1.8 in all"),
    "fine-tuning-component": (26.6, "start + imports 6, load 7.7, training 8.4"),
    "inference-component": (22.6, "start 3, load 11.7, work 0.5, exit 7"),
    "evaluation-component": (6.4, "6.4 in all"),
}
PHASES = ("start", "imports", "load", "work", "exit")


def row(what: str, figure: str, compared: str = "-", ratio: str = "") -> str:
    return f"| {what} | {figure} | {compared} | {ratio} |"


def split_cell(split: StepSplit) -> str:
    parts = " / ".join(f"{split.phases[p]:.2f}" if p in split.phases else "-" for p in PHASES)
    overhead = sum(v for k, v in split.phases.items() if k != "work")
    # the phases come from two clocks (the step's and the runner's log): cap the share at 100 %
    share = min(1.0, overhead / split.total) if split.total else 0.0
    return f"{parts} ({split.total:.1f} s); overhead {100 * share:.0f} %"


def machine() -> str:
    import torch

    lines = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.machine()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, no GPU; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def run_rows(label: str, wall: float, splits: dict[str, StepSplit], before: bool) -> list[str]:
    whole = f"`make run-local`, {label}: whole"
    if before:
        was = BEFORE["run-local"]
        rows = [row(whole, f"{wall:.1f} s", f"{was:.0f} s before", f"{was / wall:.1f}x faster")]
    else:
        rows = [row(whole, f"{wall:.1f} s")]
    for task, name in TASKS.items():
        split = splits[task]
        what = f"{name}, {label}: {' / '.join(PHASES)}"
        if before and task in BEFORE:
            total, parts = BEFORE[task]
            faster = f"{float(total) / split.total:.1f}x faster"
            rows.append(row(what, split_cell(split), f"{total} s before ({parts})", faster))
        else:
            rows.append(row(what, split_cell(split)))
    return rows


def comparison_rows(generation: dict[str, Any], scoring: dict[str, Any],
                    packing: dict[str, Any]) -> list[str]:  # fmt: skip
    batched, sequential = generation["batched_per_s"], generation["sequential_per_s"]
    ragas, direct = scoring["ragas_rouge_l_ms"], scoring["direct_rouge_l_ms"]
    packed, unpacked = packing["packed_tokens_per_s"], packing["unpacked_tokens_per_s"]
    same = f"{generation['identical']}/{generation['rows']} answers identical"
    means = f"means {scoring['ragas_mean']:.4f} / {scoring['direct_mean']:.4f}"
    all_metrics = scoring["all_ms"] * scoring["rows"] / 1000
    return [
        row(f"generation, batch of {generation['batch_size']}", f"{batched:.1f} samples/s",
            f"one at a time: {sequential:.1f} samples/s", f"{batched / sequential:.1f}x ({same})"),
        row(f"evaluation, ragas ROUGE-L ({scoring['rows']} rows)", f"{ragas:.3f} ms/sample",
            f"rouge-score directly: {direct:.3f} ms/sample", f"{ragas / direct:.1f}x ({means})"),
        row(f"evaluation, all {scoring['metrics']} ragas metrics",
            f"{scoring['all_ms']:.2f} ms/sample", "-", f"{all_metrics:.2f} s in all"),
        row(f"fine-tuning, packing on ({packing['steps']} steps)", f"{packed:.0f} tokens/s",
            f"packing off: {unpacked:.0f} real tokens/s", f"{packed / unpacked:.1f}x"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-full", action="store_true", help="skip the full data set's run")
    args = parser.parse_args()
    full = FULL_DATA if FULL_DATA.is_file() and not args.no_full else None

    with tempfile.TemporaryDirectory(prefix="yoda-bench-") as tmp:
        tiny = Path(tmp) / "tiny-phi3"
        tiny_s = bench_run_local.make_tiny_model(tiny)
        sample_wall, sample, sample_run = bench_run_local.run_local(tiny, Path(tmp) / "sample")
        full_run = bench_run_local.run_local(tiny, Path(tmp) / "full", full) if full else None
        base_cost = bench_run_local.inference_base_cost(full_run[2] if full_run else sample_run)
        packing = bench_run_local.packing_throughput(tiny, full or sample_data())
    generation = bench_inference.measure()
    scoring = bench_evaluation.measure()

    was = BEFORE["tiny model"]
    rows = [row("measurement", "figure", "compared with", "ratio"), "| --- | --- | --- | --- |"]
    rows.append(row("tiny model generation (first run only)", f"{tiny_s:.1f} s",
                    f"{was:.0f} s before", f"{was / tiny_s:.1f}x faster"))  # fmt: skip
    rows += run_rows("sample (48 rows)", sample_wall, sample, before=True)
    if full_run:
        rows += run_rows("full data set (720 rows)", *full_run[:2], before=False)
    on, off = base_cost["with_base_true"], base_cost["with_base_false"]
    what = f"inference step with the base model's answers ({base_cost['rows']:.0f} rows)"
    rows.append(row(what, f"{on:.1f} s", f"without: {off:.1f} s", f"{on / off:.2f}x"))
    rows += comparison_rows(generation, scoring, packing)
    table = "\n".join(rows)
    print(table)
    write_report(args.output, table)


def sample_data() -> Path:
    from yoda_pipeline.settings import sample_data_path

    return sample_data_path()


def write_report(path: Path, table: str) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.parent.mkdir(parents=True, exist_ok=True)
    # the GPU section is make bench-gpu's (benchmarks/bench_gpu.py): kept as it is
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    gpu = old[old.index(GPU_SECTION) :] if GPU_SECTION in old else ""
    path.write_text(
        f"# Benchmarks\n\n"
        f"Written by `make bench` (`uv run python benchmarks/bench.py`) on {stamp}, commit "
        f"{commit or 'unknown'}; machine: {machine()}. Rerun it the same way: the file is "
        "rewritten.\n\n"
        "A step's split is start (process creation to the step's entry: interpreter, CLI "
        "imports, flags) / imports (the ML libraries) / load (the model) / work / exit "
        "(after its last line until the runner saw it end), in seconds; `overhead` is all but "
        "the work, as a share of the step's time in KFP's log. \"Before\" is the figure "
        "recorded at commit 8fad47f (issue #10).\n\n"
        f"{table}\n\n{NOTES}" + (f"\n{gpu}" if gpu else ""),
        encoding="utf-8",
    )
    print(f"\nwrote {path}", file=sys.stderr)


NOTES = """## Reading the figures

- On the 48-row sample the work is milliseconds to seconds, so what is left is the floor of
  importing the libraries each step uses: torch (2-2.5 s here, its CUDA build loading its CUDA
  libraries even without a GPU), datasets with pyarrow (1.5 s, needed by trl), ragas (4-4.5 s: it
  imports langchain, openai's client, pandas and datasets at import time), pandas (1.1 s).
  The fine-tuning step also pays torch's compiler stack (`torch._dynamo`, 2.5 s) the first time
  an optimizer is built: torch itself imports it there. On the full data set the work dominates.
- What was cut: bitsandbytes is no longer imported where nothing is quantised (it cost 6-14 s at
  import, a `pip list` shell, and torch-inductor's compile workers, whose shutdown cost 7 s at
  exit); `generate()` is told it runs in one process (`synced_gpus=False`), which spares it an
  FSDP check that imported `torch.distributed.fsdp` and the compiler stack (3 s); the last
  garbage collection at exit skips the objects that already existed (`gc.freeze()` at exit,
  0.5 s per torch process); `--help` and bad flags import no ML library; the offline run's
  results are seeded, so the before/after runs can be compared byte for byte.
"""


if __name__ == "__main__":
    main()
