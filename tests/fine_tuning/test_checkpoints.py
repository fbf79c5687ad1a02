"""Checkpoints (``checkpoints.py``) are the step's own, hold no code, and let a preempted run go
on (issue 17).

- The step writes checkpoints into a subfolder it makes and marks; it removes that subfolder
  alone, and only with its mark: a user's files beside it, or a whole bucket given as
  ``--checkpoint-dir gs://BUCKET``, survive (here under the fuse guard's ``/gcs``-like mount).
- Resuming unpickles weights-only: a payload planted in a checkpoint's ``rng_state.pth`` is
  refused with one line and never runs.
- A preempted fine-tuning resumes: killed mid-way, rerun on the same checkpoint folder, it goes
  on from its last complete checkpoint and ends where an uninterrupted run ends; a stopped one
  keeps only its checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yoda_fine_tuning import train as train_module
from yoda_fine_tuning.checkpoints import (
    CHECKPOINT_MARK,
    checkpoint_folder_for,
    claim_checkpoint_folder,
    last_complete_checkpoint,
)
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune
from yoda_step_io import StepError

FUSE_GUARD = Path(__file__).resolve().parents[1] / "fuse_guard"
QUICK = HyperParameters(quantization="auto", max_steps=2, logging_steps=1, learning_rate=1e-2)
#: The killed-and-resumed run: its steps, and a checkpoint (and a log) every few.
STEPS, EVERY = 20, 5


class Payload:
    """Unpickling this creates the file ``path``: code run from a checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_a_planted_pickle_in_a_checkpoint_does_not_run(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    checkpoints = tmp_path / "checkpoints"
    with monkeypatch.context() as patch:  # keep the checkpoints, as a preempted run would
        patch.setattr(train_module, "release_checkpoint_folder", lambda folder: None)
        fine_tune(sample_train_jsonl, tmp_path / "m", tmp_path / "x",
                  base_model=str(tiny_model_dir), hp=QUICK, checkpoint_dir=checkpoints)  # fmt: skip
    (rng_state,) = checkpoints.rglob("checkpoint-2/rng_state.pth")
    ran = tmp_path / "payload-ran"
    torch.save({"python": Payload(ran)}, rng_state)
    with pytest.raises(StepError, match="refused \\(weights-only loading\\)") as error:
        fine_tune(sample_train_jsonl, tmp_path / "m", tmp_path / "x",
                  base_model=str(tiny_model_dir), hp=dataclasses.replace(QUICK, max_steps=4),
                  checkpoint_dir=checkpoints)  # fmt: skip
    assert "\n" not in str(error.value)
    assert not ran.exists(), "the planted payload ran"
    assert not (tmp_path / "m").exists(), "no model published from a refused resume"


def test_a_folder_without_the_mark_is_not_taken_over(tmp_path: Path) -> None:
    theirs = tmp_path / "yoda-checkpoints-x"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("someone else's")
    with pytest.raises(StepError) as error:
        claim_checkpoint_folder(theirs, ())
    assert str(theirs) in str(error.value) and f"no {CHECKPOINT_MARK} mark" in str(error.value)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"], "their folder is left as it is"
    with pytest.raises(StepError, match="overlaps"):
        claim_checkpoint_folder(tmp_path / "model" / "ckpt", (tmp_path / "model",))
    assert claim_checkpoint_folder(tmp_path / "mine", ()) == tmp_path / "mine"
    assert (tmp_path / "mine" / CHECKPOINT_MARK).is_file()
    assert claim_checkpoint_folder(tmp_path / "mine", ()) == tmp_path / "mine", "a retry"


@pytest.mark.slow  # fine-tuning processes on a mount
def test_a_bucket_root_as_checkpoint_dir_loses_nothing_on_the_mount(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path
) -> None:
    """``--checkpoint-dir gs://BUCKET`` on Vertex AI's ``/gcs`` mount (the fuse guard's stand-in):
    the step's checkpoints come and go in their own subfolder; the bucket's other files stay."""
    mount = tmp_path / "gcs"
    bucket = mount / "bucket"
    (bucket / "data").mkdir(parents=True)
    (bucket / "data" / "yoda.csv").write_text("precious")
    (bucket / "keep.txt").write_text("precious")
    python_path = os.pathsep.join([str(FUSE_GUARD), os.environ.get("PYTHONPATH", "")])
    guard_log = str(tmp_path / "guard.log")
    env = {**os.environ, "YODA_GCS_MOUNT": str(mount), "YODA_FUSE_GUARD_ROOT": str(mount),
           "YODA_FUSE_GUARD_LOG": guard_log, "PYTHONPATH": python_path}  # fmt: skip
    run = bucket / "root" / "job" / "fine-tuning"
    command = [str(Path(sys.executable).with_name("yoda-fine-tuning")),
               "--train-dataset", str(sample_train_jsonl), "--base-model", str(tiny_model_dir),
               "--model-output", str(run / "model"), "--metrics-output", str(run / "metrics"),
               "--checkpoint-dir", "gs://bucket", "--quantization", "auto",
               "--max-steps", "2", "--logging-steps", "1"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "guard.log").read_text()
    assert "guarded" in log or "rmtree" in log, "the step ran under the guard"
    assert (bucket / "data" / "yoda.csv").read_text() == "precious"
    assert (bucket / "keep.txt").read_text() == "precious"
    assert not list(bucket.glob("yoda-checkpoints-*")), "the step's own subfolder is removed"
    assert (run / "model" / "adapter_model.safetensors").is_file()


def test_resumes_from_a_checkpoint(
    tmp_path: Path,
    tiny_model_dir: Path,
    sample_train_jsonl: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A preempted run (checkpoints left behind) resumes where it stopped, its retry writing to
    the same output paths; torch.load stays weights-only (no full unpickling is turned on)."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # unset by the step
    checkpoints = tmp_path / "checkpoints"
    owned = checkpoint_folder_for(tmp_path / "m", checkpoints)
    with monkeypatch.context() as patch:  # keep the checkpoints, as a preempted run would
        patch.setattr(train_module, "release_checkpoint_folder", lambda folder: None)
        fine_tune(sample_train_jsonl, tmp_path / "m", tmp_path / "x",
                  base_model=str(tiny_model_dir), hp=QUICK, checkpoint_dir=checkpoints)  # fmt: skip
    assert (owned / "checkpoint-2").is_dir()
    with caplog.at_level(logging.INFO):
        result = fine_tune(
            sample_train_jsonl, tmp_path / "m", tmp_path / "x", base_model=str(tiny_model_dir),
            hp=dataclasses.replace(QUICK, max_steps=4), checkpoint_dir=checkpoints,
        )  # fmt: skip
    assert f"resuming from checkpoint {owned / 'checkpoint-2'}" in caplog.text
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    assert result.metrics["train_steps"] == 4
    assert not owned.exists() and checkpoints.is_dir()


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
    (error,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert f"stopped by {signum.name}:" in error
    assert "Traceback" not in stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [owned.name]
