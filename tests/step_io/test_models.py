"""Models by name (yoda_step_io.models). One base-model copy per bucket: `make cache-base-model`
into the GCS emulator, then `base_model=gs://…` read through a /gcs mount or downloaded once, by
fine-tuning and inference. The model cache (cached_copy, as yoda-serve, yoda-predict and the steps
download): it refuses an object that would land outside it, and a download killed half-way is not
reused: the next one downloads it again, whole."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_servers import slow_link

from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune
from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_pipeline.base_model import cache_base_model, default_destination
from yoda_pipeline.cli import main
from yoda_step_io import StepError
from yoda_step_io.models import DOWNLOAD_COMPLETE, cached_copy, resolve_model

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
    capsys: pytest.CaptureFixture[str], one_error_line: Callable[..., str], tmp_path: Path,
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
    line = one_error_line(main, "cache-base-model")
    assert URI in line and "already" in line


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
    assert last.startswith("yoda_step_io.cli.StepError: ") and "nobody/no-such-model" in last


def test_the_model_cache_refuses_an_object_that_would_land_outside(
    bucket: Any, tmp_path: Path
) -> None:
    """yoda-predict's and yoda-serve's cache (cached_copy) goes through download_prefix's check
    (tests/step_io/test_gcs.py)."""
    bucket.blob("run/model/adapter_config.json").upload_from_string(b"{}")
    bucket.blob("run/model//etc/escaped.txt").upload_from_string(b"pwned")
    with pytest.raises(StepError, match=re.escape("refusing object 'run/model//etc/escaped.txt'")):
        cached_copy(f"gs://{bucket.name}/run/model", tmp_path / "cache")
    assert not Path("/etc/escaped.txt").exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))


def test_a_killed_download_is_downloaded_again(bucket: Any, tmp_path: Path) -> None:
    """The completion mark is written last: a half-written copy is never reused."""
    bucket.blob("m/adapter_config.json").upload_from_string(b"{}")
    bucket.blob("m/adapter_model.safetensors").upload_from_string(b"whole weights")
    copy = cached_copy(f"gs://{bucket.name}/m", tmp_path / "cache")
    assert (copy / "adapter_model.safetensors").read_bytes() == b"whole weights"
    # a download killed half-way: the weights cut short, no completion mark
    (copy / "adapter_model.safetensors").write_bytes(b"whole")
    (copy / ".download-complete").unlink()
    again = cached_copy(f"gs://{bucket.name}/m", tmp_path / "cache")
    assert again == copy and (copy / "adapter_model.safetensors").read_bytes() == b"whole weights"


#: A model folder as the fine-tuning step writes it, downloaded in this order (by name).
MODEL_FILES = {
    "adapter_config.json": b'{"base_model_name_or_path": "tiny"}',
    "adapter_model.safetensors": random.Random(19).randbytes(4 << 20),
    "tokenizer.json": random.Random(20).randbytes(1 << 20),
}
DOWNLOAD = (
    "import sys; from pathlib import Path; from yoda_step_io.models import cached_copy; "
    "cached_copy(sys.argv[1], Path(sys.argv[2]))"
)


def test_a_download_killed_half_way_is_downloaded_again(
    bucket: Any, gcs_emulator_host: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real download, SIGKILLed with the weights half on disk (no clean-up can run): the
    copy without its completion mark is not reused, the next run downloads it again, whole."""
    for name, data in MODEL_FILES.items():
        bucket.blob(f"killed/model/{name}").upload_from_string(data)
    uri, cache = f"gs://{bucket.name}/killed/model", tmp_path / "cache"
    weights = MODEL_FILES["adapter_model.safetensors"]
    log = tmp_path / "download.log"
    with slow_link(gcs_emulator_host, bytes_per_s=1 << 20) as link, log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", DOWNLOAD, uri, str(cache)],
            env={**os.environ, "STORAGE_EMULATOR_HOST": link}, stdout=output, stderr=output,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        try:  # until a quarter MiB of the weights is on disk
            while not any(p.stat().st_size > 256 << 10 for p in cache.glob("*/adapter_model.*")):
                assert process.poll() is None, f"the download ended early: {log.read_text()}"
                assert time.monotonic() < deadline, "no part of the weights reached the cache"
                time.sleep(0.005)
        finally:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    (partial,) = cache.glob("*/adapter_model.safetensors")
    copy = partial.parent
    assert 0 < partial.stat().st_size < len(weights), "killed half-way through the weights"
    assert not (copy / DOWNLOAD_COMPLETE).exists() and not (copy / "tokenizer.json").exists()
    caplog.set_level(logging.INFO, logger="yoda_step_io.models")
    again = cached_copy(uri, cache)
    on_disk = {p.name: p.read_bytes() for p in again.iterdir() if not p.name.startswith(".")}
    sizes = {name: len(data) for name, data in on_disk.items()}
    assert again == copy and sizes == {name: len(data) for name, data in MODEL_FILES.items()}
    assert on_disk == MODEL_FILES, "a complete, byte-identical copy"
    assert f"downloading {uri}" in caplog.text and (again / DOWNLOAD_COMPLETE).is_file()
    caplog.clear()
    assert cached_copy(uri, cache) == again and "downloading" not in caplog.text, "then reused"
