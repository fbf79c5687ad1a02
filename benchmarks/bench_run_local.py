"""Where the time of an offline run goes: per step, start / imports / load / work / exit.

Runs ``yoda-pipeline run-local`` (KFP's local runner, as ``make run-local`` does) in a temporary
runs folder and reads its console: KFP's "Executing task" and "finished" lines give each step's
span, the step's own ``timing:`` line (yoda_step_io.timing) its start, imports, load and work;
what remains after that line until KFP saw the process end is the exit. Also times the tiny
model's generation (the first run's extra) and fine-tuning throughput with packing on and off.
Part of ``make bench`` (benchmarks/bench.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TASKS = {
    "data-transformation-component": "data transformation",
    "fine-tuning-component": "fine-tuning",
    "inference-component": "inference",
    "evaluation-component": "evaluation",
    "report-component": "report",
    "gate-component": "quality gate",
}
_KFP = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d{3}) - \w+ - (?:Executing task '([^']+)'|Task '([^']+)' finished)"
)
_TIMING = re.compile(
    r"^\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ yoda_step_io\.cli: timing: (.*)$"
)
_PHASE = re.compile(r"(\w+) ([\d.]+) s")


@dataclass
class StepSplit:
    """One step's seconds per phase and in all (from KFP's start to KFP's end)."""

    phases: dict[str, float] = field(default_factory=dict)
    total: float = 0.0


def _clock(text: str, day: str) -> float:
    return datetime.strptime(f"{day} {text}", "%Y-%m-%d %H:%M:%S.%f").timestamp()


def parse_console(console: str) -> dict[str, StepSplit]:
    """Per task: the phases of its ``timing:`` line plus ``exit``, and its span in KFP's log."""
    started: dict[str, str] = {}
    finished: dict[str, str] = {}
    timing: dict[str, tuple[str, str]] = {}
    current = ""
    for line in console.splitlines():
        kfp = _KFP.match(line)
        if kfp:
            clock, start, end = kfp.groups()
            if start:
                started[start], current = clock, start
            else:
                finished[end] = clock
            continue
        step = _TIMING.match(line)
        if step and current:
            timing[current] = step.groups()
    splits: dict[str, StepSplit] = {}
    for task, (stamp, phases) in timing.items():
        day, at = stamp.split(" ")
        logged = _clock(at.replace(",", "."), day)
        split = StepSplit({name: float(value) for name, value in _PHASE.findall(phases)})
        split.phases["exit"] = max(0.0, _clock(finished[task], day) - logged)
        split.total = _clock(finished[task], day) - _clock(started[task], day)
        splits[task] = split
    return splits


def run_local(
    tiny_model: Path, runs: Path, raw_data: Path | None = None
) -> tuple[float, dict[str, StepSplit], Path]:
    """Wall seconds of ``yoda-pipeline run-local`` (its runs folder under ``runs``), the split
    of each of its steps, and the run folder."""
    command = [str(BIN / "yoda-pipeline"), "run-local", "--runs-dir", str(runs)]
    if raw_data is not None:
        command += ["--raw-data-uri", str(raw_data)]
    env = {**os.environ, "YODA_TINY_MODEL_DIR": str(tiny_model)}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"run-local failed: {done.stderr.strip().splitlines()[-1]}")
    (run,) = sorted(runs.glob("run-*"))[-1:]
    return wall, parse_console(done.stdout), run


def inference_base_cost(run: Path) -> dict[str, float]:
    """The inference step's wall time with the base model's answers and without, on the run's
    own model and test split (the step's command, as the pipeline gives it)."""
    (model,) = run.glob("outputs/*/fine-tuning-component/model")
    (test,) = run.glob("outputs/*/data-transformation-component/test")
    seconds: dict[str, float] = {"rows": float(len(test.read_text().splitlines()))}
    with tempfile.TemporaryDirectory(prefix="yoda-bench-") as tmp:
        for with_base in ("true", "false"):
            command = [str(BIN / "yoda-inference"), "--model-dir", str(model), "--test-dataset",
                       str(test), "--quantization", "auto", "--predictions-output",
                       f"{tmp}/p-{with_base}", "--base-predictions-output", f"{tmp}/b-{with_base}",
                       "--with-base-model", with_base]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds[f"with_base_{with_base}"] = time.perf_counter() - start
    return seconds


def make_tiny_model(target: Path) -> float:
    """Seconds to generate the tiny model (what the first ``make run-local`` adds)."""
    start = time.perf_counter()
    subprocess.run([str(BIN / "yoda-make-tiny-model"), str(target)], check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - start


def packing_throughput(tiny_model: Path, raw_data: Path, steps: int = 40) -> dict[str, Any]:
    """Fine-tuning tokens/s with packing on and off: the same recipe and steps on ``raw_data``.

    Packed rows are all real tokens (batch x max_seq_length per step); unpacked rows are one
    conversation each, padded to the longest in the batch: their real tokens per step are
    batch x mean(conversation length), counted with the same chat template and truncation.
    """
    from transformers import AutoTokenizer

    from yoda_data_transformation import transform
    from yoda_fine_tuning.hyperparams import HyperParameters
    from yoda_fine_tuning.train import fine_tune

    results: dict[str, Any] = {"steps": steps}
    with tempfile.TemporaryDirectory(prefix="yoda-bench-") as tmp:
        out = Path(tmp)
        transform(str(raw_data), out / "train.jsonl", out / "test.jsonl")
        tokenizer = AutoTokenizer.from_pretrained(tiny_model)
        lengths = [
            min(len(tokenizer.apply_chat_template(json.loads(line)["messages"])), 64)
            for line in (out / "train.jsonl").read_text().splitlines()
        ]
        for packing in (True, False):
            hp = HyperParameters(quantization="auto", packing=packing, max_steps=steps)
            metrics = fine_tune(out / "train.jsonl", out / f"m{packing}", out / f"x{packing}",
                                base_model=str(tiny_model), hp=hp).metrics  # fmt: skip
            per_step = hp.per_device_train_batch_size * (
                hp.max_seq_length if packing else sum(lengths) / len(lengths)
            )
            name = "packed" if packing else "unpacked"
            results[f"{name}_tokens_per_s"] = steps * per_step / metrics["train_runtime_s"]
            results[f"{name}_seconds"] = metrics["train_runtime_s"]
    return results
