"""The inference step's work (yoda_inference.predict): the test set answered by the tiny tuned
model into the predictions CSV (the base model's answers beside it, or a header only), bad inputs
refused with nothing written, and the generation parameters' bounds."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from yoda_inference.model import trained_on
from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_step_io import StepError


def test_predictions_csv(tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path) -> None:
    out = tmp_path / "predictions.csv"
    result = predict_test_set(
        tuned_model_dir, sample_test_jsonl, out,
        params=GenerationParameters(batch_size=2, max_new_tokens=8), quantization="auto",
    )  # fmt: skip
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["user_input", "reference", "extracted_response"]
    test = [json.loads(line)["messages"] for line in sample_test_jsonl.read_text().splitlines()]
    assert [r[0] for r in rows[1:]] == [m[0]["content"] for m in test]  # test-set order
    assert [r[1] for r in rows[1:]] == [m[1]["content"] for m in test]
    assert all("<|" not in r[2] for r in rows[1:])
    meta = result.metadata
    assert result.rows == meta["rows"] == len(test) == 5
    assert meta["batch_size"] == 2 and meta["base_model"] == trained_on(tuned_model_dir).base_model
    assert math.isfinite(meta["samples_per_second"]) and meta["samples_per_second"] > 0
    assert meta["tokens_per_second"] > 0 and meta["generated_tokens"] > 0


def test_base_answers_turned_off_leave_a_header_only(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path
) -> None:
    result = predict_test_set(
        tuned_model_dir, sample_test_jsonl, tmp_path / "p.csv", quantization="auto",
        params=GenerationParameters(max_new_tokens=2), base_predictions_path=tmp_path / "b.csv",
        with_base_model=False,
    )  # fmt: skip
    assert (tmp_path / "b.csv").read_text().splitlines() == [
        "user_input,reference,extracted_response"]  # fmt: skip
    assert result.base_metadata == {"rows": 0, "skipped": "with_base_model is false"}
    assert result.metadata["rows"] == 5


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("no-adapter", "no LoRA adapter"),
        ("missing-model", "does not exist"),
        ("empty-test", "is empty"),
        ("not-messages", 'line 1: expected {"messages"'),
        ("no-assistant", "user and an assistant"),
    ],
)
def test_bad_inputs_leave_no_csv(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path, case: str, phrase: str
) -> None:
    model_dir, test = tuned_model_dir, sample_test_jsonl
    if case == "no-adapter":
        model_dir = tmp_path / "model"
        shutil.copytree(tuned_model_dir, model_dir)
        (model_dir / "adapter_model.safetensors").unlink()
    elif case == "missing-model":
        model_dir = tmp_path / "nope"
    elif case == "empty-test":
        test = write_jsonl(tmp_path / "test.jsonl", [])
    elif case == "not-messages":
        test = write_jsonl(tmp_path / "test.jsonl", [{"sentence": "a", "translation": "b"}])
    else:
        test = write_jsonl(
            tmp_path / "test.jsonl", [{"messages": [{"role": "user", "content": "a"}]}]
        )
    out = tmp_path / "out" / "predictions.csv"
    with pytest.raises(StepError) as error:
        predict_test_set(model_dir, test, out, params=GenerationParameters(), quantization="auto")
    named = model_dir if case.endswith("model") or case == "no-adapter" else test
    assert str(named) in str(error.value) and phrase in str(error.value)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_nan_temperature_is_refused_by_the_parameters_check() -> None:
    with pytest.raises(StepError, match=re.escape("--temperature nan")):
        GenerationParameters(do_sample=True, temperature=float("nan")).validate()
