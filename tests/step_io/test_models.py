"""One base-model copy per bucket: `make cache-base-model` into the GCS emulator, then
`base_model=gs://…` read through a /gcs mount or downloaded once, by fine-tuning and inference."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune
from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_pipeline.base_model import cache_base_model, default_destination
from yoda_pipeline.cli import main
from yoda_step_io import StepError
from yoda_step_io.models import resolve_model

URI = "gs://yoda-models/models/tiny-phi3"


@pytest.fixture
def cached(gcs: Any, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if not gcs.bucket("yoda-models").exists():
        gcs.create_bucket("yoda-models")
    written = cache_base_model(str(tiny_model_dir), URI)
    assert f"{URI}/config.json" in written and f"{URI}/model.safetensors" in written
    monkeypatch.setenv("YODA_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("YODA_GCS_MOUNT", str(tmp_path / "no-mount"))
    return URI


def test_a_gs_base_model_trains_and_answers_and_is_downloaded_once(
    cached: str, tmp_path: Path, sample_train_jsonl: Path, sample_test_jsonl: Path
) -> None:
    hp = HyperParameters(quantization="auto", max_steps=1)
    fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics", base_model=cached,
              hp=hp)  # fmt: skip
    config = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == cached, "the adapter names the gs:// base"
    (copy,) = (p for p in (tmp_path / "cache").iterdir() if not p.name.startswith("."))
    stamp = (copy / "config.json").stat().st_mtime_ns
    params = GenerationParameters(max_new_tokens=2)
    result = predict_test_set(tmp_path / "model", sample_test_jsonl, tmp_path / "p.csv",
                              quantization="auto", params=params)  # fmt: skip
    assert result.metadata["base_model"] == cached and result.rows == 5
    assert (copy / "config.json").stat().st_mtime_ns == stamp, "downloaded once, then reused"


def test_the_gcs_mount_is_read_where_it_exists(
    cached: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = tmp_path / "gcs" / "yoda-models" / "models" / "tiny-phi3"
    shutil.copytree(tiny_model_dir, mounted)
    monkeypatch.setenv("YODA_GCS_MOUNT", str(tmp_path / "gcs"))
    assert resolve_model(cached) == str(mounted)
    assert not (tmp_path / "cache").exists(), "no download where the mount has it"


def test_cache_base_model_refuses_what_cannot_work(gcs: Any, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StepError, match=r"holds no config\.json"):
        cache_base_model(str(tmp_path / "empty"), "gs://yoda-models/models/x")
    with pytest.raises(StepError, match="give a folder in the bucket"):
        cache_base_model(str(tmp_path / "empty"), "gs://yoda-models")
    assert default_destination("b", "microsoft/Phi-3-mini-4k-instruct") == (
        "gs://b/models/microsoft--Phi-3-mini-4k-instruct"
    )


def test_cli_copies_and_says_how_to_use_it(
    gcs: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("YODA_BUCKET", "yoda-models")
    if not gcs.bucket("yoda-models").exists():
        gcs.create_bucket("yoda-models")
    main(["cache-base-model", "--source", str(tiny_model_dir)])
    out = capsys.readouterr().out
    destination = default_destination("yoda-models", str(tiny_model_dir))
    assert f"to {destination}." in out and f"YODA_BASE_MODEL={destination}" in out
    monkeypatch.setenv("YODA_BASE_MODEL", URI)
    with pytest.raises(SystemExit):
        main(["cache-base-model"])
    assert "is gs://yoda-models/models/tiny-phi3 already" in capsys.readouterr().err


@pytest.mark.timeout(30)
@pytest.mark.parametrize("offline", ["1", ""])
def test_a_hub_id_the_hub_cannot_give_is_one_line_at_once(tmp_path: Path, offline: str) -> None:
    """No network here: a hub id fails in about a second (huggingface_hub), not the minute of
    transformers' retries, whether HF_HUB_OFFLINE is set or not (read at import: a new process)."""
    script = "from yoda_step_io.models import resolve_model; resolve_model('nobody/no-such-model')"
    environ = {**os.environ, "HF_HUB_OFFLINE": offline, "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=environ, check=False)  # fmt: skip
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("yoda_step_io.cli.StepError: cannot get base model nobody/no-such-")
