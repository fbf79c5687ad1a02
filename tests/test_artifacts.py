"""Fetching a run's TensorBoard logs (local or gs://) for `tensorboard --logdir logs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from yoda_pipeline.artifacts import fetch_tensorboard_logs
from yoda_pipeline.cli import main
from yoda_step_io import StepError

EVENT = "events.out.tfevents.1700000000.host.1.0"


def make_local_run(root: Path) -> Path:
    metrics = root / "run-1" / "outputs" / "yoda-job-1" / "fine-tuning-component" / "metrics"
    (metrics / "tensorboard").mkdir(parents=True)
    (metrics / "tensorboard" / EVENT).write_bytes(b"event-bytes")
    (metrics / "metrics.json").write_text("{}")
    return root / "run-1"


def test_local_run_folder(tmp_path: Path) -> None:
    run = make_local_run(tmp_path / "runs")
    destination = fetch_tensorboard_logs(str(run), tmp_path / "logs")
    assert destination == tmp_path / "logs" / "yoda-job-1"
    files = sorted(
        p.relative_to(destination).as_posix() for p in destination.rglob("*") if p.is_file()
    )
    assert files == [f"tensorboard/{EVENT}"]
    assert (destination / "tensorboard" / EVENT).read_bytes() == b"event-bytes"


def test_gcs_metrics_artifact(gcs: Any, tmp_path: Path) -> None:
    if not gcs.bucket("yoda-artifacts").exists():
        gcs.create_bucket("yoda-artifacts")
    bucket = gcs.bucket("yoda-artifacts")
    base = "root/123/yoda-job-7/fine-tuning-component_99/metrics"
    bucket.blob(f"{base}/tensorboard/{EVENT}").upload_from_string(b"one")
    bucket.blob(f"{base}/tensorboard/eval/{EVENT}").upload_from_string(b"two")
    bucket.blob(f"{base}/metrics.json").upload_from_string(b"{}")
    bucket.blob(f"{base}-other/tensorboard/{EVENT}").upload_from_string(b"not ours")
    destination = fetch_tensorboard_logs(f"gs://yoda-artifacts/{base}", tmp_path / "logs")
    assert destination == tmp_path / "logs" / "yoda-job-7"
    files = {p.relative_to(destination).as_posix(): p.read_bytes()
             for p in destination.rglob("*") if p.is_file()}  # fmt: skip
    assert files == {f"tensorboard/{EVENT}": b"one", f"tensorboard/eval/{EVENT}": b"two"}


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://yoda-artifacts/root/none/job/task/metrics", "no files found under"),
        ("gs://no-such-bucket-here/a/b/c", "bucket no-such-bucket-here does not exist"),
    ],
)
def test_gcs_errors(gcs: Any, tmp_path: Path, uri: str, message: str) -> None:
    if not gcs.bucket("yoda-artifacts").exists():
        gcs.create_bucket("yoda-artifacts")
    with pytest.raises(StepError, match=message):
        fetch_tensorboard_logs(uri, tmp_path / "logs")
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("*"))


def test_cli_defaults_to_the_latest_local_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_local_run(tmp_path / "runs")
    monkeypatch.setenv("YODA_LOCAL_RUNS_DIR", str(tmp_path / "runs"))
    main(["tensorboard", "--logs-dir", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert f"uv run tensorboard --logdir {tmp_path / 'logs'}" in out
    assert (tmp_path / "logs" / "yoda-job-1" / "tensorboard" / EVENT).is_file()


def test_cli_without_runs_or_events_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YODA_LOCAL_RUNS_DIR", str(tmp_path / "none"))
    with pytest.raises(SystemExit) as exit_info:
        main(["tensorboard"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: no local runs under")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main(["tensorboard", str(tmp_path / "empty"), "--logs-dir", str(tmp_path / "logs")])
    assert "no TensorBoard event files" in capsys.readouterr().err
