"""The fine-tuned model (yoda_inference.model): the base it was trained on, loaded with the adapter
on or off, and the Model artifact downloaded from gs:// or copied from a folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_inference import download_model
from yoda_inference.cli import main
from yoda_inference.model import load_for_answers, trained_on
from yoda_step_io import StepError


def test_base_answers_come_from_the_same_model_with_the_adapter_off(
    loaded: tuple[Any, Any], tuned_model_dir: Path, tiny_model_dir: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model, tokenizer = loaded
    inputs = tokenizer(["<|user|>\nThe Force is strong.<|end|>\n<|assistant|>\n"],
                       return_tensors="pt", add_special_tokens=False)  # fmt: skip
    alone = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        tuned = model(**inputs).logits
        with model.disable_adapter():
            off = model(**inputs).logits
        base = alone(**inputs).logits
        again = model(**inputs).logits
    assert torch.allclose(off, base, atol=1e-6), "adapter off = the base model loaded alone"
    assert not torch.allclose(tuned, base, atol=1e-4), "the adapter changes the answer"
    assert torch.equal(again, tuned), "the adapter is back on after the block"


def _copy_with(source: Path, folder: Path, file: str, **changes: Any) -> Path:
    """A copy of the Model artifact ``source`` with ``changes`` made to one of its JSON files."""
    shutil.copytree(source, folder)
    values = json.loads((folder / file).read_text())
    (folder / file).write_text(json.dumps({**values, **changes}))
    return folder


def test_the_adapter_configs_base_is_not_what_is_loaded(
    tuned_model_dir: Path, tmp_path: Path
) -> None:
    """peft's adapter_config.json may name any base (whatever wrote the adapter): a hub id there
    is never downloaded; the base is the one the fine-tuning step recorded."""
    model = _copy_with(tuned_model_dir, tmp_path / "model", "adapter_config.json",
                       base_model_name_or_path="someone/else-on-the-hub")  # fmt: skip
    loaded, _ = load_for_answers(str(model), "auto", tmp_path / "cache")
    assert trained_on(model).base_model == trained_on(tuned_model_dir).base_model
    assert loaded.peft_config["default"].r > 0


@pytest.mark.parametrize(
    ("recorded", "in_a_run", "said"),
    [
        ("someone/else-on-the-hub", True, "error: --base-model "),  # not the run's: no download
        ("/etc", False, "no config.json"),
        ("a/b/c; rm -rf /", False, "'a/b/c; rm -rf /': expected a hub id"),
    ],
)
def test_inference_loads_the_runs_own_base_only(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path,
    one_error_line: Callable[..., str], recorded: str, in_a_run: bool, said: str,
) -> None:  # fmt: skip
    model = _copy_with(tuned_model_dir, tmp_path / "model", "hyperparameters.json",
                       base_model=recorded)  # fmt: skip
    run_base = trained_on(tuned_model_dir).base_model
    line = one_error_line(main, "--model-dir", str(model), "--test-dataset",
                          str(sample_test_jsonl), "--predictions-output", str(tmp_path / "p.csv"),
                          "--quantization", "auto",
                          *(["--base-model", run_base] if in_a_run else []))  # fmt: skip
    assert said in line and recorded in line
    assert not (tmp_path / "p.csv").exists()


def test_a_model_without_its_fine_tuning_record_is_refused(
    tuned_model_dir: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tuned_model_dir, model)
    (model / "hyperparameters.json").unlink()
    with pytest.raises(StepError, match=r"has no hyperparameters\.json"):
        trained_on(model)


def test_download_model_from_gcs(gcs: Any, tmp_path: Path, tuned_model_dir: Path) -> None:
    if not gcs.bucket("yoda-models").exists():
        gcs.create_bucket("yoda-models")
    bucket = gcs.bucket("yoda-models")
    prefix = "root/job/fine-tuning-component_1/model"
    files = [p for p in tuned_model_dir.rglob("*") if p.is_file()]
    for path in files:
        bucket.blob(
            f"{prefix}/{path.relative_to(tuned_model_dir).as_posix()}"
        ).upload_from_filename(str(path))
    bucket.blob(f"{prefix}/nested/deeper/extra.txt").upload_from_string(b"nested")
    bucket.blob(f"{prefix}-sibling/other.txt").upload_from_string(b"not ours")
    local = download_model(f"gs://yoda-models/{prefix}/", tmp_path / "downloaded")
    got = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert got == {p.relative_to(tuned_model_dir).as_posix() for p in files} | {
        "nested/deeper/extra.txt"
    }
    assert (local / "adapter_model.safetensors").read_bytes() == (
        tuned_model_dir / "adapter_model.safetensors").read_bytes()  # fmt: skip


@pytest.mark.parametrize(
    ("uri", "named", "phrase"),
    [
        ("gs://yoda-models/no/such/prefix", "gs://yoda-models/no/such/prefix", "no files found"),
        ("gs://missing-bucket-xyz/model", "bucket missing-bucket-xyz", "does not exist"),
        ("/no/such/dir", "/no/such/dir", "does not exist"),
    ],
)
def test_download_model_errors(gcs: Any, tmp_path: Path, uri: str, named: str, phrase: str) -> None:
    if not gcs.bucket("yoda-models").exists():
        gcs.create_bucket("yoda-models")
    with pytest.raises(StepError) as error:
        download_model(uri, tmp_path / "local")
    assert named in str(error.value) and phrase in str(error.value)
    assert not (tmp_path / "local").exists()


def test_download_model_from_local_dir(tmp_path: Path, tuned_model_dir: Path) -> None:
    local = download_model(str(tuned_model_dir), tmp_path / "copy")
    assert (local / "adapter_config.json").read_text() == (
        tuned_model_dir / "adapter_config.json"
    ).read_text()
