"""What a finished run publishes (``outputs.py``): the Model artifact records the adapter, the
tokenizer, the hyper-parameters and the base's revision (checked again on every load of that
base); the Metrics artifact holds finite metrics and TensorBoard's loss curves."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning.architecture import DEFAULT_TARGETS
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import FineTuneResult, fine_tune
from yoda_inference.cli import main as inference_main
from yoda_inference.model import trained_on
from yoda_step_io import StepError
from yoda_step_io.models import check_revision, folder_revision, model_revision


def test_adapter_reloads_with_peft_and_gives_the_same_logits(
    trained: tuple[FineTuneResult, Path], tiny_model_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, out = trained
    model_dir = out / "model"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
            "hyperparameters.json"} <= {p.name for p in model_dir.iterdir()}  # fmt: skip
    config = json.loads((model_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)
    assert config["r"] == 8 and set(config["target_modules"]) == set(DEFAULT_TARGETS["phi3"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), model_dir
    ).eval()
    inputs = tokenizer("<|user|>\nThe Force is strong.<|end|>\n", return_tensors="pt")
    with torch.no_grad():
        expected = result.model.eval()(**inputs).logits
        actual = reloaded(**inputs).logits
    assert torch.allclose(expected, actual, atol=1e-5)


def test_tensorboard_event_files_hold_the_losses(trained: tuple[FineTuneResult, Path]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, out = trained
    event_files = list((out / "metrics").rglob("events.out.tfevents.*"))
    assert event_files
    tags: set[str] = set()
    for event_file in event_files:
        accumulator = EventAccumulator(str(event_file))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert {"train/loss", "eval/loss"} <= tags


def test_metrics_are_finite_and_complete(trained: tuple[FineTuneResult, Path]) -> None:
    result, out = trained
    metrics = result.metrics
    for name in ("train_loss", "eval_loss", "train_runtime_s", "train_samples_per_second",
                 "peak_memory_mb"):  # fmt: skip
        assert math.isfinite(metrics[name]) and metrics[name] > 0, name
    assert metrics["train_steps"] == 4
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert metrics["hp_lora_r"] == 8 and metrics["hp_learning_rate"] == 1e-2
    assert json.loads((out / "metrics" / "metrics.json").read_text()) == metrics
    assert result.model_metadata["optim"] == "adamw_torch"
    assert result.model_metadata["quantized_4bit"] is False
    assert not (out / "model-checkpoints").exists(), "checkpoints are removed after success"


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
    one_error_line: Callable[..., str],
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
    line = one_error_line(inference_main, "--model-dir", str(moved),
                          "--test-dataset", str(sample_test_jsonl),
                          "--predictions-output", str(tmp_path / "p.csv"),
                          "--quantization", "auto", "--base-model", str(changed))  # fmt: skip
    now = folder_revision(changed)
    assert now != trained
    assert str(changed) in line and f"revision {now}" in line and f"revision {trained}" in line
    assert not (tmp_path / "p.csv").exists()


def test_revisions_of_hub_ids_come_from_the_loaded_commit() -> None:
    assert model_revision("microsoft/Phi-3-mini-4k-instruct", "0a67737c") == "0a67737c"
    assert check_revision("microsoft/Phi-3-mini-4k-instruct", "0a67737c", "0a67737c") == "0a67737c"
    # the adapter was trained on 0a67737c; the hub's commit is now ff00
    with pytest.raises(StepError, match=r"revision ff00\b.*revision 0a67737c\b"):
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
    with pytest.raises(StepError, match=f"revision {re.escape(before)}"):
        check_revision(uri, before)
