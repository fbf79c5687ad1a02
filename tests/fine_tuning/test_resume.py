"""A preempted fine-tuning resumes: killed mid-way, rerun on the same checkpoint folder, it goes
on from its last complete checkpoint and ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yoda_fine_tuning.checkpoints import (
    CHECKPOINT_MARK,
    checkpoint_folder_for,
    last_complete_checkpoint,
)
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune

STEPS, EVERY = 20, 5


def test_the_newest_complete_checkpoint_is_taken(tmp_path: Path) -> None:
    assert last_complete_checkpoint(tmp_path / "none") is None
    for step, complete in ((5, True), (10, True), (15, False)):  # 15: killed while saving
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


@pytest.mark.slow  # fine-tuning processes, signalled mid-run
def test_a_killed_fine_tuning_resumes_and_ends_as_an_uninterrupted_one(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path
) -> None:
    command = [str(Path(sys.executable).with_name("yoda-fine-tuning")),
               "--train-dataset", str(sample_train_jsonl), "--base-model", str(tiny_model_dir),
               "--model-output", str(tmp_path / "run" / "model"),
               "--metrics-output", str(tmp_path / "run" / "metrics"),
               "--checkpoint-dir", str(tmp_path / "checkpoints"), "--quantization", "auto",
               "--max-steps", str(STEPS), "--logging-steps", str(EVERY)]  # fmt: skip
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "unrelated.txt").write_text("not the step's")
    owned = checkpoint_folder_for(tmp_path / "run" / "model", tmp_path / "checkpoints")
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while last_complete_checkpoint(owned) is None:
        assert first.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint within two minutes"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # a preempted machine: no clean-up, no goodbye
    first.wait()
    killed_at = last_complete_checkpoint(owned)
    assert killed_at is not None and int(killed_at.rsplit("-", 1)[1]) < STEPS
    assert (owned / CHECKPOINT_MARK).is_file() and (owned.parent / "unrelated.txt").is_file()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300,
                           env={**os.environ})  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from checkpoint" in rerun.stderr
    metrics = json.loads((tmp_path / "run" / "metrics" / "metrics.json").read_text())
    assert metrics["train_steps"] == STEPS
    assert not owned.exists(), "the step's own checkpoints are removed once the model is saved"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["unrelated.txt"]

    hp = HyperParameters(quantization="auto", max_steps=STEPS, logging_steps=EVERY)
    fine_tune(sample_train_jsonl, tmp_path / "whole" / "model", tmp_path / "whole" / "metrics",
              base_model=str(tiny_model_dir), hp=hp)  # fmt: skip
    weights = "adapter_model.safetensors"
    resumed = (tmp_path / "run" / "model" / weights).read_bytes()
    assert resumed == (tmp_path / "whole" / "model" / weights).read_bytes(), (
        "the resumed adapter differs from the uninterrupted run's"
    )


@pytest.mark.parametrize("leftover", ["model", "metrics"])
def test_a_rerun_replaces_what_a_killed_run_left(leftover: str, tmp_path: Path) -> None:
    """The killed run's half-written outputs are replaced, not mixed in (outputs_in_place)."""
    from yoda_step_io import outputs_in_place
    from yoda_step_io.files import owner_mark, step_owner

    (tmp_path / leftover).mkdir()
    (tmp_path / leftover / "stale").write_text("from the killed run")
    owner_mark(tmp_path / leftover).write_text(step_owner())  # written before the kill
    with outputs_in_place(tmp_path / leftover) as (path,):
        path.mkdir()
        (path / "fresh").write_text("new")
    assert [p.name for p in (tmp_path / leftover).iterdir()] == ["fresh"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.slow  # fine-tuning processes, signalled mid-run
def test_a_stopped_fine_tuning_says_so_and_keeps_only_its_checkpoints(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path, signum: signal.Signals
) -> None:
    """SIGTERM (Vertex AI cancels or preempts the task) or SIGINT (Ctrl-C) to a single process:
    one line, exit 128 + the signal, no partial model or metrics; the checkpoints stay."""
    command = [str(Path(sys.executable).with_name("yoda-fine-tuning")),
               "--train-dataset", str(sample_train_jsonl), "--base-model", str(tiny_model_dir),
               "--model-output", str(tmp_path / "run" / "model"),
               "--metrics-output", str(tmp_path / "run" / "metrics"), "--quantization", "auto",
               "--max-steps", "400", "--logging-steps", "2",
               "--per-device-train-batch-size", "2"]  # fmt: skip
    owned = checkpoint_folder_for(tmp_path / "run" / "model", None)
    step = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while last_complete_checkpoint(owned) is None or not (tmp_path / "run" / "metrics").exists():
        assert step.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, "no checkpoint within two minutes"
        time.sleep(0.02)
    step.send_signal(signum)
    _, stderr = step.communicate(timeout=60)
    assert step.returncode == 128 + signum
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: stopped by {signum.name}: its partial outputs were removed"]
    assert "Traceback" not in stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [owned.name]
