"""Fetching a run's TensorBoard logs (local or gs://) for `tensorboard --logdir logs`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_pipeline.artifacts import fetch_tensorboard_logs
from yoda_pipeline.cli import main
from yoda_step_io import StepError

EVENT = "events.out.tfevents.1700000000.host.1.0"


def make_local_run(root: Path) -> Path:
    metrics = root / "run-1" / "outputs" / "yoda-job-1" / "champion-component" / "metrics"
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
        ("gs://yoda-artifacts/root/none/job/task/metrics", "no files found"),
        ("gs://no-such-bucket-here/a/b/c", "bucket no-such-bucket-here"),
    ],
)
def test_gcs_errors(gcs: Any, tmp_path: Path, uri: str, message: str) -> None:
    if not gcs.bucket("yoda-artifacts").exists():
        gcs.create_bucket("yoda-artifacts")
    with pytest.raises(StepError, match=message) as error:
        fetch_tensorboard_logs(uri, tmp_path / "logs")
    assert uri in str(error.value)
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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_error_line: Callable[..., str]
) -> None:
    monkeypatch.setenv("YODA_LOCAL_RUNS_DIR", str(tmp_path / "none"))
    line = one_error_line(main, "tensorboard")
    assert str(tmp_path / "none") in line and "no local runs" in line
    (tmp_path / "empty").mkdir()
    line = one_error_line(
        main, "tensorboard", str(tmp_path / "empty"), "--logs-dir", str(tmp_path / "logs")
    )
    assert str(tmp_path / "empty") in line and "no TensorBoard event files" in line


def make_failed_run(root: Path, name: str) -> Path:
    """A newer run that failed in fine-tuning: only the data step's outputs."""
    data = root / name / "outputs" / "yoda-job-2" / "data-transformation-component"
    data.mkdir(parents=True)
    (data / "train").write_text("{}\n")
    return root / name


def test_follow_up_commands_use_the_newest_run_that_has_what_they_need(
    # capfd: `predict` hands over to the yoda-predict process, which writes to the real stdout
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    tuned_model_dir: Path,
) -> None:  # fmt: skip
    import shutil

    runs = tmp_path / "runs"
    done = make_local_run(runs)
    task = done / "outputs" / "yoda-job-1"
    shutil.copytree(tuned_model_dir, task / "champion-component" / "model")
    (task / "evaluation-component").mkdir()
    (task / "evaluation-component" / "evaluation_results").write_text(
        "user_input,reference,response,rouge_l\nHi.,Hi.,Hi.,1.0\n"
    )
    make_failed_run(runs, "run-2")
    monkeypatch.setenv("YODA_LOCAL_RUNS_DIR", str(runs))

    def assert_uses_run_1(out: str, output: str) -> None:
        """One line names the run used: run-1, which has ``output``, past the newer run-2."""
        (line,) = [line for line in out.splitlines() if line.startswith("Using ")]
        assert line.startswith(f"Using {done}:") and output in line and "skipping 1 " in line

    main(["tensorboard", "--logs-dir", str(tmp_path / "logs")])
    assert_uses_run_1(capfd.readouterr().out, "champion-component/metrics")
    assert (tmp_path / "logs" / "yoda-job-1" / "tensorboard" / EVENT).is_file()

    main(["report"])
    out = capfd.readouterr().out
    assert_uses_run_1(out, "evaluation-component/evaluation_results")
    assert "\n1 samples\n" in out

    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "The Force is strong."])
    assert exit_info.value.code == 0
    out = capfd.readouterr().out
    assert_uses_run_1(out, "champion-component/model")
    assert "> The Force is strong.\n" in out


def test_follow_up_commands_say_when_no_run_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_error_line: Callable[..., str]
) -> None:
    make_failed_run(tmp_path / "runs", "run-1")
    monkeypatch.setenv("YODA_LOCAL_RUNS_DIR", str(tmp_path / "runs"))
    for command, needed in (
        (["report"], "evaluation-component/evaluation_results"),
        (["tensorboard"], "champion-component/metrics"),
        (["predict", "Hi."], "champion-component/model"),
    ):
        line = one_error_line(main, *command)
        assert str(tmp_path / "runs") in line and needed in line and "none of the 1" in line
