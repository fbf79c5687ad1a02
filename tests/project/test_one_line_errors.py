"""Hostile files get one line and a non-zero exit, not a traceback (issue 17): non-UTF-8
datasets and reports' inputs, a corrupt or truncated adapter, an answer too long to score, and a
compile output that is not a pipeline."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

NOT_UTF8 = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'


@pytest.fixture
def one_line(capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    def run(main: Callable[[Sequence[str]], None], *argv: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(list(argv))
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, err
        assert "Traceback" not in err
        (line,) = [text for text in err.splitlines() if text.startswith("error:")]
        return line

    return run


def test_fine_tuning_on_a_non_utf8_dataset(
    tmp_path: Path, tiny_model_dir: Path, one_line: Callable[..., str]
) -> None:
    from yoda_fine_tuning.cli import main

    (tmp_path / "train.jsonl").write_bytes(NOT_UTF8)
    line = one_line(main, "--train-dataset", str(tmp_path / "train.jsonl"),
                    "--base-model", str(tiny_model_dir), "--quantization", "auto",
                    "--model-output", str(tmp_path / "model"),
                    "--metrics-output", str(tmp_path / "metrics"))  # fmt: skip
    assert "is not UTF-8 text (byte " in line
    assert not (tmp_path / "model").exists() and not (tmp_path / "metrics").exists()


def test_inference_on_a_non_utf8_dataset(
    tmp_path: Path, tuned_model_dir: Path, one_line: Callable[..., str]
) -> None:
    from yoda_inference.cli import main

    (tmp_path / "test.jsonl").write_bytes(NOT_UTF8)
    line = one_line(main, "--model-dir", str(tuned_model_dir),
                    "--test-dataset", str(tmp_path / "test.jsonl"), "--quantization", "auto",
                    "--predictions-output", str(tmp_path / "p.csv"))  # fmt: skip
    assert "is not UTF-8 text" in line and not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_adapter_is_one_line(
    tmp_path: Path, tuned_model_dir: Path, one_line: Callable[..., str], damage: str
) -> None:
    from yoda_inference.ask import main

    model = tmp_path / "model"
    shutil.copytree(tuned_model_dir, model)
    weights = model / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 9)
    line = one_line(main, str(model), "Hello there.", "--quantization", "auto")
    assert line.startswith(f"error: cannot load the LoRA adapter in {model}")


def test_the_report_on_non_utf8_results(tmp_path: Path, one_line: Callable[..., str]) -> None:
    from yoda_evaluation.report_cli import main

    (tmp_path / "results.csv").write_bytes(
        b"user_input,reference,response,rouge_l\ncaf\xe9,a,b,1\n"
    )
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "metrics.json").write_bytes(b'{"rouge_l_mean": 1.0}')
    argv = ["--evaluation-results", str(tmp_path / "results.csv"),
            "--evaluation-metrics", str(tmp_path / "metrics"),
            "--html-output", str(tmp_path / "r.html"),
            "--markdown-output", str(tmp_path / "r.md")]  # fmt: skip
    assert "are not UTF-8" in one_line(main, *argv)
    (tmp_path / "results.csv").write_text("user_input,reference,response,rouge_l\na,a,b,1\n")
    (tmp_path / "metrics" / "metrics.json").write_bytes(b'{"rouge_l_mean": "caf\xe9"}')
    again = one_line(main, *argv)
    assert "is not UTF-8 text" in again


def test_an_answer_too_long_to_score_is_refused_at_once(
    tmp_path: Path, one_line: Callable[..., str]
) -> None:
    from yoda_evaluation.cli import main
    from yoda_evaluation.evaluate import MAX_TEXT_CHARS

    long = "yes " * (MAX_TEXT_CHARS // 4 + 1)
    (tmp_path / "p.csv").write_text(
        f"user_input,reference,extracted_response\nhi,hi,hi\nhi,hi,{long}\n"
    )
    line = one_line(main, "--predictions", str(tmp_path / "p.csv"),
                    "--results-output", str(tmp_path / "r.csv"),
                    "--metrics-output", str(tmp_path / "m"))  # fmt: skip
    assert "row 2: extracted_response is longer than 100,000 characters" in line


def test_compile_does_not_overwrite_what_is_not_a_pipeline(
    tmp_path: Path, one_line: Callable[..., str]
) -> None:
    from yoda_pipeline.cli import main

    readme = tmp_path / "README.md"
    readme.write_text("# my notes\n")
    lock = Path(__file__).resolve().parents[2] / "images" / "digests.local.json"
    line = one_line(main, "compile", "--image-lock", str(lock), "--output", str(readme))
    assert "exists and is not a compiled pipeline" in line
    assert readme.read_text() == "# my notes\n"
    assert "is a folder" in one_line(main, "compile", "--image-lock", str(lock),
                                     "--output", str(tmp_path))  # fmt: skip
