"""The compiled pipeline run end to end by KFP's local runner (subprocesses, no Docker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from yoda_pipeline.cli import main, run_local
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings

REPO_ROOT = Path(__file__).resolve().parents[1]


def local_settings(tmp_path: Path, **overrides: Any) -> PipelineSettings:
    return PipelineSettings(
        image_lock=REPO_ROOT / LOCAL_IMAGE_LOCK, local_runs_dir=tmp_path / "runs", **overrides
    )


def task_dir(run_dir: Path, task: str) -> Path:
    (found,) = run_dir.glob(f"outputs/*/{task}")
    return found


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_local_run_writes_train_and_test(tmp_path: Path) -> None:
    run_dir = run_local(local_settings(tmp_path))
    assert (run_dir / "pipeline.yaml").is_file()
    data = task_dir(run_dir, "data-transformation-component")
    train, test = read_jsonl(data / "train"), read_jsonl(data / "test")
    assert (len(train), len(test)) == (43, 5)
    assert train[0]["messages"][0]["role"] == "user"
    assert train[0]["messages"][1]["content"].strip()
    executor_output = json.loads((data / "executor_output.json").read_text())
    meta = executor_output["artifacts"]["test"]["artifacts"][0]["metadata"]
    assert meta["rows"] == 5 and meta["rows_read"] == 48
    assert meta["source"].endswith("yoda_sample.csv")


def test_each_run_gets_its_own_folder_and_cli_overrides(
    tmp_path: Path, gcs: Any, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not gcs.bucket("yoda-local-run").exists():
        gcs.create_bucket("yoda-local-run")
    gcs.bucket("yoda-local-run").blob("raw.csv").upload_from_filename(str(sample_csv))
    runs = tmp_path / "runs"
    args = ["run-local", "--image-lock", str(REPO_ROOT / LOCAL_IMAGE_LOCK), "--runs-dir", str(runs)]
    main([*args, "--raw-data-uri", "gs://yoda-local-run/raw.csv",
          "--target-column", "translation", "--test-fraction", "0.5"])  # fmt: skip
    main(args)
    run_dirs = sorted(runs.iterdir())
    assert len(run_dirs) == 2
    first = task_dir(run_dirs[0], "data-transformation-component")
    assert len(read_jsonl(first / "test")) == 24
    assert all(
        not r["messages"][1]["content"].endswith("hrrrm.") for r in read_jsonl(first / "test")
    )
    printed = capsys.readouterr().out
    assert f"data-transformation-component/train: {first / 'train'}" in printed


def test_failed_task_stops_the_run_without_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
