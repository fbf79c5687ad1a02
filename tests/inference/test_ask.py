"""`yoda-predict` (yoda_inference.ask), the quick check: a few sentences answered by a Model
artifact from gs:// or a folder, shown as `> sentence` then the answer."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_inference import ask


def test_quick_check_command_answers_from_gcs(
    gcs: Any, tmp_path: Path, tuned_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not gcs.bucket("yoda-models").exists():
        gcs.create_bucket("yoda-models")
    for path in (p for p in tuned_model_dir.rglob("*") if p.is_file()):
        blob = gcs.bucket("yoda-models").blob(f"ask/model/{path.relative_to(tuned_model_dir)}")
        blob.upload_from_filename(str(path))
    ask.main(["gs://yoda-models/ask/model", "The Force is strong.", "Hi there.",
              "--max-new-tokens", "5", "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("> The Force is strong.\n") and "\n> Hi there.\n" in out
    assert "<|" not in out
    (cached,) = (p for p in (tmp_path / "cache").iterdir() if not p.name.startswith("."))
    assert (cached / "adapter_config.json").is_file() and (cached / ".download-complete").is_file()


def test_quick_check_refuses_empty_sentences(
    tuned_model_dir: Path, one_error_line: Callable[..., str]
) -> None:
    assert "non-empty sentence" in one_error_line(ask.main, str(tuned_model_dir), "  ", alone=True)


def test_quick_check_shows_an_empty_answer_as_such(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ask, "answer", lambda model_uri, sentences, **_: ["", "Strong, it is."])
    ask.main(["some/model", "First.", "Second."])
    assert capsys.readouterr().out == (
        f"> First.\n{ask.EMPTY_ANSWER}\n\n> Second.\nStrong, it is.\n\n"
    )


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_adapter_is_one_line(
    tmp_path: Path, tuned_model_dir: Path, one_error_line: Callable[..., str], damage: str
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tuned_model_dir, model)
    weights = model / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 9)
    line = one_error_line(ask.main, str(model), "Hello there.", "--quantization", "auto")
    assert str(model) in line and "LoRA adapter" in line
