"""One recipe's run (``run.py``): the recipe over the flags, and its outcome for a sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning.cli import main


@pytest.mark.parametrize(
    ("recipe", "status"),
    [({"lora_r": 4, "max_steps": 2, "learning_rate": 0.01}, "finished"),
     ({"max_seq_length": 16384}, "failed")],
)  # fmt: skip
def test_a_recipe_says_how_it_went_in_its_outcome(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path, recipe: dict[str, Any],
    status: str,
) -> None:  # fmt: skip
    """One recipe of a sweep: the recipe over the flags; its outcome finished (its losses, its
    model) or failed (the reason: no 16k-token sequence packs from the sample), the step
    ending well either way so that the other recipes go on."""
    main(["--train-dataset", str(sample_train_jsonl), "--base-model", str(tiny_model_dir),
          "--model-output", str(tmp_path / "model"), "--metrics-output", str(tmp_path / "m"),
          "--quantization", "auto", "--max-steps", "3", "--recipe", json.dumps(recipe),
          "--outcome-output", str(tmp_path / "outcome"),
          "--model-uri", "gs://b/model"])  # fmt: skip
    outcome = json.loads((tmp_path / "outcome").read_text())
    assert (outcome["recipe"], outcome["status"]) == (recipe, status)
    if status == "failed":
        assert "too little text" in outcome["reason"] and "16384 tokens" in outcome["reason"]
        assert not (tmp_path / "model").exists() and not (tmp_path / "m").exists()
        return
    assert json.loads((tmp_path / "model" / "adapter_config.json").read_text())["r"] == 4
    assert outcome["train_steps"] == 2 and outcome["model_uri"] == "gs://b/model"
    assert outcome["metrics_uri"] == str(tmp_path / "m")
    assert math.isfinite(outcome["validation_answer_loss"]) and outcome["tokens_per_second"] > 0
    hyperparameters = json.loads((tmp_path / "model" / "hyperparameters.json").read_text())
    assert hyperparameters["learning_rate"] == 0.01
