"""The fine-tuning step's console script (``cli.py``): its flags as hyper-parameters, where
``--checkpoint-dir`` may point, bad values refused in one line before any output, and the
metrics and model metadata reported to KFP."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from kfp_documents import outputs_input

from yoda_fine_tuning.cli import build_parser, checkpoint_folder, main
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_step_io.values import from_args

#: A JSON Lines row that is not UTF-8 (Latin-1's é).
NOT_UTF8 = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'


def test_cli_flags_map_to_hyperparameters() -> None:
    args = build_parser().parse_args([
        "--train-dataset", "t", "--model-output", "m", "--metrics-output", "x",
        "--lora-target-modules", "qkv_proj, o_proj", "--packing", "false", "--lora-r", "16",
        "--learning-rate", "1e-4", "--quantization", "auto",
    ])  # fmt: skip
    hp = from_args(HyperParameters, args)
    assert hp.lora_target_modules == ("qkv_proj", "o_proj")
    assert (hp.packing, hp.lora_r, hp.learning_rate, hp.quantization) == (False, 16, 1e-4, "auto")


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--lora-r", "0"], "from 1 to 1024"),
        (["--lora-target-modules", "wq,all-linear"], "all-linear alone"),
        (["--validation-fraction", "2"], "> 0 and < 1"),
        (["--quantization", "4bit"], "needs a CUDA GPU"),
        (["--accelerator-count", "64"], "from 1 to 16"),
        (["--checkpoint-dir", "/"], "top-level folder"),
    ],
)
def test_cli_bad_hyperparameters_exit_2_without_output(
    tmp_path: Path,
    one_error_line: Callable[..., str],
    sample_train_jsonl: Path,
    flags: list[str],
    fragment: str,
) -> None:
    """The flag and its value named, with what it may be."""
    import torch

    if "4bit" in flags and torch.cuda.is_available():
        pytest.skip("CUDA present: 4-bit is allowed")
    line = one_error_line(main, "--train-dataset", str(sample_train_jsonl),
                          "--model-output", str(tmp_path / "m"),
                          "--metrics-output", str(tmp_path / "x"), *flags)  # fmt: skip
    flag, value = flags
    assert line.startswith(f"error: {flag} {value!r}:") and fragment in line
    assert list(tmp_path.iterdir()) == []


def test_more_ranks_than_cores_are_refused_before_any_rank_starts(
    tmp_path: Path, one_error_line: Callable[..., str], sample_train_jsonl: Path
) -> None:
    count = (os.cpu_count() or 1) + 1
    if count > 16:
        pytest.skip("more cores here than one machine's GPUs")
    line = one_error_line(main, "--train-dataset", str(sample_train_jsonl),
                          "--model-output", str(tmp_path / "m"),
                          "--metrics-output", str(tmp_path / "x"),
                          "--accelerator-count", str(count), alone=True)  # fmt: skip
    assert line.startswith(f"error: --accelerator-count {count}:")
    assert f"{count - 1} CPU core(s)" in line and line.endswith(f"at most {count - 1}")
    assert list(tmp_path.iterdir()) == []


def test_fine_tuning_on_a_non_utf8_dataset(
    tmp_path: Path, tiny_model_dir: Path, one_error_line: Callable[..., str]
) -> None:
    (tmp_path / "train.jsonl").write_bytes(NOT_UTF8)
    line = one_error_line(main, "--train-dataset", str(tmp_path / "train.jsonl"),
                          "--base-model", str(tiny_model_dir), "--quantization", "auto",
                          "--model-output", str(tmp_path / "model"),
                          "--metrics-output", str(tmp_path / "metrics"))  # fmt: skip
    assert str(tmp_path / "train.jsonl") in line and "not UTF-8" in line
    assert f"(byte {NOT_UTF8.index(0xE9)})" in line
    assert not (tmp_path / "model").exists() and not (tmp_path / "metrics").exists()


def test_cli_reports_metrics_and_model_metadata_to_kfp(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path
) -> None:
    output_file = tmp_path / "executor_output.json"
    executor_input = outputs_input(output_file, "model", "metrics")
    main([
        "--train-dataset", str(sample_train_jsonl), "--base-model", str(tiny_model_dir),
        "--model-output", str(tmp_path / "model"), "--metrics-output", str(tmp_path / "metrics"),
        "--quantization", "auto", "--max-steps", "1",
        "--executor-input", executor_input,
    ])  # fmt: skip
    artifacts = json.loads(output_file.read_text())["artifacts"]
    metrics = artifacts["metrics"]["artifacts"][0]["metadata"]
    model = artifacts["model"]["artifacts"][0]["metadata"]
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["eval_loss"])
    assert metrics["train_steps"] == 1
    assert model["base_model"] == str(tiny_model_dir) and model["lora_r"] == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ("build/checkpoints", Path("build/checkpoints"))],
)
def test_checkpoint_folders_that_survive(text: str, expected: Path | None) -> None:
    assert checkpoint_folder(text) == expected


def test_gs_checkpoints_go_through_the_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gcs" / "yoda-bucket").mkdir(parents=True)
    monkeypatch.setenv("YODA_GCS_MOUNT", str(tmp_path / "gcs"))
    assert checkpoint_folder("gs://yoda-bucket/runs/r1/checkpoints") == (
        tmp_path / "gcs" / "yoda-bucket" / "runs" / "r1" / "checkpoints"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("gs://yoda-bucket/x", "Cloud Storage mount ({mount}/yoda-bucket)"),
        ("s3://bucket/x", "unsupported scheme s3://"),
        ("hf://user/repo", "unsupported scheme hf://"),
    ],
)
def test_other_checkpoint_locations_are_refused_in_one_line(
    text: str, fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    one_error_line: Callable[..., str], sample_train_jsonl: Path,
) -> None:  # fmt: skip
    """Only a local folder or a gs:// bucket mounted here survives the task."""
    mount = tmp_path / "no-mount"
    monkeypatch.setenv("YODA_GCS_MOUNT", str(mount))
    line = one_error_line(main, "--train-dataset", str(sample_train_jsonl),
                          "--model-output", str(tmp_path / "out" / "model"),
                          "--metrics-output", str(tmp_path / "out" / "metrics"),
                          "--quantization", "auto", "--checkpoint-dir", text)  # fmt: skip
    assert line.startswith(f"error: --checkpoint-dir {text!r}: ")
    assert fragment.format(mount=mount) in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
