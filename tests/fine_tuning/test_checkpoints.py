"""Checkpoints are the step's own and hold no code (issue 17).

- The step writes checkpoints into a subfolder it makes and marks; it removes that subfolder
  alone, and only with its mark: a user's files beside it, or a whole bucket given as
  ``--checkpoint-dir gs://BUCKET``, survive (here under the fuse guard's ``/gcs``-like mount).
- Resuming unpickles weights-only: a payload planted in a checkpoint's ``rng_state.pth`` is
  refused with one line and never runs.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yoda_fine_tuning import train as train_module
from yoda_fine_tuning.checkpoints import CHECKPOINT_MARK, claim_checkpoint_folder
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune
from yoda_step_io import StepError

FUSE_GUARD = Path(__file__).resolve().parents[1] / "fuse_guard"
QUICK = HyperParameters(quantization="auto", max_steps=2, logging_steps=1, learning_rate=1e-2)


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
    with pytest.raises(StepError, match="was not made by this step"):
        claim_checkpoint_folder(theirs, ())
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
