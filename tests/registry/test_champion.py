"""The sweep's champion step: the lowest validation answer loss wins, failures are kept in the
table with their reasons, none finished is one line naming each reason, and a bad sweep (a
duplicate, too many recipes) is refused by the step's own checks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from yoda_registry.champion import STEP, main, table
from yoda_step_io import BadValueError, StepError


def outcome(folder: Path, recipe: dict[str, Any], loss: float | None) -> dict[str, Any]:
    """A recipe's outcome: finished with its validation answer loss, or (None) failed."""
    if loss is None:
        return {"recipe": recipe, "status": "failed", "reason": "training diverged"}
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "adapter_model.safetensors").write_bytes(str(loss).encode())
    (folder / "metrics").mkdir()
    (folder / "metrics" / "metrics.json").write_text(json.dumps({"eval_loss": loss}))
    history = [{"step": 1, "eval_loss": loss + 1}, {"step": 2, "eval_loss": loss}]
    (folder / "metrics" / "log_history.json").write_text(json.dumps(history))
    return {"recipe": recipe, "status": "finished", "validation_answer_loss": loss,
            "eval_loss": loss, "train_loss": loss, "train_steps": 2, "tokens_per_second": 10.0,
            "minutes": 0.1, "model_uri": str(folder / "model"),
            "metrics_uri": str(folder / "metrics")}  # fmt: skip


def test_the_lowest_validation_loss_wins_and_failures_are_kept(tmp_path: Path) -> None:
    outcomes = [outcome(tmp_path / "a", {"lora_r": 4}, 2.5),
                outcome(tmp_path / "b", {"lora_r": 8}, 1.5),
                outcome(tmp_path / "c", {"lora_r": 16}, None)]  # fmt: skip
    rows = table(outcomes)
    assert [row["champion"] for row in rows] == [False, True, False]
    assert rows[2]["reason"] == "training diverged" and rows[2]["curve"] == []
    assert rows[1]["curve"] == [[1.0, 2.5], [2.0, 1.5]]


def test_a_non_finite_loss_never_wins(tmp_path: Path) -> None:
    rows = table([outcome(tmp_path / "a", {}, math.nan), outcome(tmp_path / "b", {"x": 1}, 9.0)])
    assert [row["champion"] for row in rows] == [False, True]


def test_no_finished_recipe_is_one_line_naming_each_reason(tmp_path: Path) -> None:
    with pytest.raises(StepError) as error:
        table([outcome(tmp_path, {"lora_r": 4}, None), outcome(tmp_path, {"lora_r": 8}, None)])
    message = str(error.value)
    assert "no recipe" in message and "finished" in message and "\n" not in message
    assert 'recipe 1 {"lora_r": 4}: training diverged' in message
    assert 'recipe 2 {"lora_r": 8}: training diverged' in message


def test_the_step_copies_the_champions_model_and_writes_the_table(tmp_path: Path) -> None:
    outcomes = [outcome(tmp_path / "a", {"lora_r": 4}, 2.5),
                outcome(tmp_path / "b", {"lora_r": 8}, 1.5)]  # fmt: skip
    main(["--sweep", json.dumps([o["recipe"] for o in outcomes]),
          "--outcomes", json.dumps([json.dumps(o) for o in outcomes]),
          "--model-output", str(tmp_path / "out" / "model"),
          "--metrics-output", str(tmp_path / "out" / "metrics")])  # fmt: skip
    model = tmp_path / "out" / "model"
    assert (model / "adapter_model.safetensors").read_bytes() == b"1.5"
    assert json.loads((model / "recipe.json").read_text()) == {"lora_r": 8}
    rows = json.loads((tmp_path / "out" / "metrics" / "sweep.json").read_text())
    assert [row["champion"] for row in rows] == [False, True]


@pytest.mark.parametrize(
    ("sweep", "more", "said"),
    [
        ('[{"lora_r": 8}, {"lora_r": 8.0}]', [], '{"lora_r": 8} is given twice'),
        ("[{}, {}]", [], "{} is given twice"),
        ("[1]", [], "JSON list of objects"),
        ("[]", [], "JSON list of objects"),
        ('[{"a": 1}, {"a": 2}, {"a": 3}]', ["--max-recipes", "2"], "3 recipes: at most 2"),
    ],
)
def test_a_bad_sweep_is_refused_by_the_steps_own_checks(
    tmp_path: Path, sweep: str, more: list[str], said: str
) -> None:
    argv = ["--sweep", sweep, "--model-output", str(tmp_path / "m"),
            "--metrics-output", str(tmp_path / "x"), *more]  # fmt: skip
    with pytest.raises(BadValueError) as error:
        STEP.arguments(argv)
    assert error.value.flag == "--sweep" and said in error.value.problem
