"""The compiled pipeline run end to end by KFP's local runner (subprocesses, no Docker)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from yoda_pipeline.cli import main
from yoda_pipeline.offline import ensure_tiny_model, offline_settings, run_local
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--set", "max_steps=2"]


def task_dir(run_dir: Path, task: str) -> Path:
    (found,) = run_dir.glob(f"outputs/*/{task}")
    return found


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def output_metadata(task: Path, output: str) -> dict[str, Any]:
    executor_output = json.loads((task / "executor_output.json").read_text())
    metadata: dict[str, Any] = executor_output["artifacts"][output]["artifacts"][0]["metadata"]
    return metadata


@pytest.fixture
def local_settings(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> PipelineSettings:
    monkeypatch.setenv("YODA_TINY_MODEL_DIR", str(tiny_model_dir))
    return PipelineSettings(
        image_lock=REPO_ROOT / LOCAL_IMAGE_LOCK, local_runs_dir=tmp_path / "runs", max_steps=3
    )


def test_local_run_writes_every_artifact(local_settings: PipelineSettings) -> None:
    run_dir = run_local(local_settings)
    assert (run_dir / "pipeline.yaml").is_file()
    data = task_dir(run_dir, "data-transformation-component")
    train, test = read_jsonl(data / "train"), read_jsonl(data / "test")
    assert (len(train), len(test)) == (43, 5)
    assert train[0]["messages"][0]["role"] == "user"
    meta = output_metadata(data, "test")
    assert meta["rows"] == 5 and meta["rows_read"] == 48
    assert meta["source"].endswith("yoda_sample.csv")

    tuned = task_dir(run_dir, "fine-tuning-component")
    assert (tuned / "model" / "adapter_model.safetensors").is_file()
    assert list((tuned / "metrics").rglob("events.out.tfevents.*"))
    metrics = output_metadata(tuned, "metrics")
    assert metrics["train_steps"] == 3
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["eval_loss"])
    model_meta = output_metadata(tuned, "model")
    assert model_meta["base_model"] == str(local_settings.tiny_model_dir.resolve())
    assert model_meta["quantization"] == "auto"


def test_offline_settings_fill_in_only_what_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setenv("YODA_TINY_MODEL_DIR", str(tiny_model_dir))
    filled = offline_settings(PipelineSettings())
    assert filled.raw_data_uri.endswith("yoda_sample.csv")
    assert (filled.base_model, filled.quantization) == (str(tiny_model_dir.resolve()), "auto")
    kept = offline_settings(PipelineSettings(base_model="/models/phi3", quantization="none"))
    assert (kept.base_model, kept.quantization) == ("/models/phi3", "none")


def test_tiny_model_is_generated_when_missing(tmp_path: Path) -> None:
    generated = ensure_tiny_model(tmp_path / "tiny")
    assert (generated / "config.json").is_file() and (generated / "tokenizer.json").is_file()


def test_each_run_gets_its_own_folder_and_cli_overrides(
    tmp_path: Path,
    gcs: Any,
    sample_csv: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("YODA_TINY_MODEL_DIR", str(tiny_model_dir))
    if not gcs.bucket("yoda-local-run").exists():
        gcs.create_bucket("yoda-local-run")
    gcs.bucket("yoda-local-run").blob("raw.csv").upload_from_filename(str(sample_csv))
    runs = tmp_path / "runs"
    args = ["run-local", "--image-lock", str(REPO_ROOT / LOCAL_IMAGE_LOCK), "--runs-dir", str(runs)]
    main([*args, *QUICK, "--raw-data-uri", "gs://yoda-local-run/raw.csv",
          "--target-column", "translation", "--test-fraction", "0.5",
          "--set", "lora_r=4"])  # fmt: skip
    main([*args, *QUICK])
    run_dirs = sorted(runs.iterdir())
    assert len(run_dirs) == 2
    first = task_dir(run_dirs[0], "data-transformation-component")
    assert len(read_jsonl(first / "test")) == 24
    assert all(
        not r["messages"][1]["content"].endswith("hrrrm.") for r in read_jsonl(first / "test")
    )
    tuned = task_dir(run_dirs[0], "fine-tuning-component")
    assert json.loads((tuned / "model" / "adapter_config.json").read_text())["r"] == 4
    printed = capsys.readouterr().out
    assert f"data-transformation-component/train: {first / 'train'}" in printed


def test_set_refuses_unknown_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run-local", "--set", "lora_rank=4"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: --set 'lora_rank=4': expected NAME=VALUE")


def test_failed_task_stops_the_run_without_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("YODA_TINY_MODEL_DIR", str(tiny_model_dir))
    with pytest.raises(SystemExit) as exit_info:
        main(["run-local", "--image-lock", str(REPO_ROOT / LOCAL_IMAGE_LOCK),
              "--runs-dir", str(tmp_path / "runs"),
              "--raw-data-uri", str(tmp_path / "nope.csv")])  # fmt: skip
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "does not exist" in captured.out  # the task's own error line, streamed by the runner
    assert captured.err.startswith(
        "error: Pipeline 'yoda-phi3-finetuning' finished with status FAILURE"
    )
    assert "'data-transformation-component'" in captured.err
    assert not list((tmp_path / "runs").glob("*/outputs/*/*/train"))
