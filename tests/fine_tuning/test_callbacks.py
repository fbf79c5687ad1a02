"""A diverged run fails (``callbacks.py``): the first non-finite loss is found, and the step ends
with one line, publishing no model and keeping no checkpoint."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from yoda_fine_tuning.callbacks import first_non_finite
from yoda_fine_tuning.cli import main


def test_first_non_finite_names_the_loss_and_the_step() -> None:
    history = [{"loss": 2.0, "step": 1}, {"eval_loss": 1.9, "step": 2},
               {"loss": float("inf"), "step": 3},
               {"eval_loss": float("nan"), "step": 3}]  # fmt: skip
    assert first_non_finite(history) == ("loss", float("inf"), 3)
    assert first_non_finite(history[:2]) is None


def test_a_diverged_run_fails_and_publishes_no_model(
    tmp_path: Path, nan_model_dir: Path, sample_train_jsonl: Path,
    one_error_line: Callable[..., str],
) -> None:  # fmt: skip
    """A loss gone NaN (here from a broken base): one error line naming the loss, its step and
    the values to change, exit 2, no Model or Metrics output, no checkpoint to resume from; the
    user's files beside the checkpoints are left alone."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "unrelated.txt").write_text("not the step's")
    line = one_error_line(main, "--train-dataset", str(sample_train_jsonl),
                          "--base-model", str(nan_model_dir),
                          "--model-output", str(tmp_path / "model"),
                          "--metrics-output", str(tmp_path / "m"),
                          "--checkpoint-dir", str(tmp_path / "checkpoints"),
                          "--quantization", "auto", "--max-steps", "6",
                          "--logging-steps", "1")  # fmt: skip
    assert line.startswith("error: training diverged:")
    assert re.search(r"\b(nan|-?inf) at step \d+\b", line), line
    assert "learning_rate (now 0.0003)" in line and "(now float16)" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["unrelated.txt"]
