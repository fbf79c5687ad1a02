"""`yoda-inference`, the inference step's command line: the executor output KFP reads, and bad
flags or inputs refused in one line before anything is written."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kfp_documents import outputs_input

from yoda_inference.cli import main

#: A JSON Lines row that is not UTF-8 (Latin-1's é).
NOT_UTF8 = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'


def test_cli_writes_executor_output(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path
) -> None:
    output_file = tmp_path / "executor_output.json"
    executor_input = outputs_input(output_file, "predictions", "base_predictions")
    main(["--model-dir", str(tuned_model_dir), "--test-dataset", str(sample_test_jsonl),
          "--predictions-output", str(tmp_path / "p.csv"), "--quantization", "auto",
          "--base-predictions-output", str(tmp_path / "b.csv"),
          "--max-new-tokens", "4", "--executor-input", executor_input])  # fmt: skip
    artifacts = json.loads(output_file.read_text())["artifacts"]
    meta = artifacts["predictions"]["artifacts"][0]["metadata"]
    assert meta["rows"] == 5 and meta["max_new_tokens"] == 4
    # four new tokens are too few to end a turn: every answer is cut, and counted as such
    assert meta["cut_answers"] == 5 and {"empty_answers", "repeated_answers"} <= set(meta)
    base_meta = artifacts["base_predictions"]["artifacts"][0]["metadata"]
    assert base_meta["rows"] == 5 and base_meta["adapter"] == "disabled"
    for name in ("p.csv", "b.csv"):
        with (tmp_path / name).open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["user_input", "reference", "extracted_response"] and len(rows) == 6


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--batch-size", "0"], "--batch-size '0'"),
        (["--max-new-tokens", "-1"], "--max-new-tokens '-1'"),
        (["--max-new-tokens", "1000000000"], "--max-new-tokens '1000000000'"),
        (["--top-p", "0"], "--top-p '0'"),
        (["--do-sample", "true", "--temperature", "0"], "--temperature '0'"),
        (["--quantization", "8bit"], "--quantization '8bit'"),
    ],
)
def test_cli_bad_parameters(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path,
    one_error_line: Callable[..., str], flags: list[str], named: str,
) -> None:  # fmt: skip
    line = one_error_line(main, "--model-dir", str(tuned_model_dir),
                          "--test-dataset", str(sample_test_jsonl),
                          "--predictions-output", str(tmp_path / "p.csv"), *flags)  # fmt: skip
    assert line.startswith(f"error: {named}: ")
    assert not (tmp_path / "p.csv").exists()


def test_inference_on_a_non_utf8_dataset(
    tmp_path: Path, tuned_model_dir: Path, one_error_line: Callable[..., str]
) -> None:
    (tmp_path / "test.jsonl").write_bytes(NOT_UTF8)
    line = one_error_line(main, "--model-dir", str(tuned_model_dir),
                          "--test-dataset", str(tmp_path / "test.jsonl"), "--quantization", "auto",
                          "--predictions-output", str(tmp_path / "p.csv"))  # fmt: skip
    assert str(tmp_path / "test.jsonl") in line and "not UTF-8" in line
    assert not (tmp_path / "p.csv").exists()
