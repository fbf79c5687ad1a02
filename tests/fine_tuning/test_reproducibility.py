"""Training that can be reproduced: the base model's revision recorded and checked on every load,
checkpoints only where they survive (a local folder or the /gcs mount)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning.cli import checkpoint_folder
from yoda_fine_tuning.cli import main as fine_tuning_main
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune
from yoda_inference.cli import main as inference_main
from yoda_inference.model import trained_on
from yoda_step_io import StepError
from yoda_step_io.models import check_revision, folder_revision, model_revision


@pytest.fixture(scope="module")
def trained_on_a_copy(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, sample_train_jsonl: Path
) -> tuple[Path, Path]:
    """A tiny model's copy (the tests change it afterwards) and an adapter trained on it."""
    out = tmp_path_factory.mktemp("revision")
    base = shutil.copytree(tiny_model_dir, out / "base")
    fine_tune(sample_train_jsonl, out / "model", out / "metrics", base_model=str(base),
              hp=HyperParameters(quantization="auto", max_steps=1))  # fmt: skip
    return base, out / "model"


def test_the_content_hash_of_the_base_is_recorded(trained_on_a_copy: tuple[Path, Path]) -> None:
    base, model = trained_on_a_copy
    revision = folder_revision(base)
    assert revision.startswith("sha256:") and len(revision) == 7 + 64
    hyperparameters = json.loads((model / "hyperparameters.json").read_text())
    assert hyperparameters["base_model_revision"] == revision == trained_on(model).revision
    (base / ".download-complete").touch()  # hidden bookkeeping is not content
    assert folder_revision(base) == revision


def test_a_changed_base_is_refused_naming_both_revisions(
    trained_on_a_copy: tuple[Path, Path], sample_test_jsonl: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    base, model = trained_on_a_copy
    trained = trained_on(model).revision
    changed = tmp_path / "changed"
    shutil.copytree(base, changed)
    config = json.loads((changed / "config.json").read_text())
    (changed / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-6}))
    moved = tmp_path / "model"  # the record names the changed folder, with the old revision
    shutil.copytree(model, moved)
    record = json.loads((moved / "hyperparameters.json").read_text())
    (moved / "hyperparameters.json").write_text(json.dumps({**record, "base_model": str(changed)}))
    model = moved
    with pytest.raises(SystemExit) as exit_info:
        inference_main(["--model-dir", str(model), "--test-dataset", str(sample_test_jsonl),
                        "--predictions-output", str(tmp_path / "p.csv"), "--quantization",
                        "auto", "--base-model", str(changed)])  # fmt: skip
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: the base model {changed} is at revision sha256:")
    assert f"but the adapter was trained on revision {trained}" in line
    assert not (tmp_path / "p.csv").exists()


def test_revisions_of_hub_ids_come_from_the_loaded_commit() -> None:
    assert model_revision("microsoft/Phi-3-mini-4k-instruct", "0a67737c") == "0a67737c"
    assert check_revision("microsoft/Phi-3-mini-4k-instruct", "0a67737c", "0a67737c") == "0a67737c"
    with pytest.raises(StepError, match="at revision ff00, but the adapter was trained on"):
        check_revision("microsoft/Phi-3-mini-4k-instruct", "0a67737c", "ff00")


def test_a_changed_gs_copy_is_refused(
    gcs: Any, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yoda_pipeline.base_model import cache_base_model

    if not gcs.bucket("yoda-revisions").exists():
        gcs.create_bucket("yoda-revisions")
    uri = "gs://yoda-revisions/models/tiny"
    cache_base_model(str(tiny_model_dir), uri)
    before = model_revision(uri)
    assert before.startswith("crc32c:")
    gcs.bucket("yoda-revisions").blob("models/tiny/config.json").upload_from_string(b"{}")
    with pytest.raises(StepError, match=f"trained on revision {before}"):
        check_revision(uri, before)


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
    ("text", "message"),
    [
        ("gs://yoda-bucket/x", "gs:// checkpoints are written through Vertex AI's Cloud Storage "
                               "mount"),
        ("s3://bucket/x", "unsupported scheme s3://: expected a local path or gs://"),
        ("hf://user/repo", "unsupported scheme hf://: expected a local path or gs://"),
    ],
)  # fmt: skip
def test_other_checkpoint_locations_are_refused_in_one_line(
    text: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], sample_train_jsonl: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("YODA_GCS_MOUNT", str(tmp_path / "no-mount"))
    with pytest.raises(SystemExit) as exit_info:
        fine_tuning_main(["--train-dataset", str(sample_train_jsonl),
                          "--model-output", str(tmp_path / "out" / "model"),
                          "--metrics-output", str(tmp_path / "out" / "metrics"),
                          "--quantization", "auto", "--checkpoint-dir", text])  # fmt: skip
    assert exit_info.value.code == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: --checkpoint-dir {text!r}: ") and message in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
