"""Generation with the tiny tuned model: batched = one at a time, predictions CSV, bad inputs."""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_inference import download_model, generate_batch, generate_response
from yoda_inference.cli import main
from yoda_inference.model import load_finetuned, load_for_answers, trained_on
from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_step_io import StepError

SENTENCES = [
    "The Force is strong in you!",
    "Hi.",
    "We walked along the quiet river at dawn, and the wind was cold on our faces.",
    "Patience you must have.",
]

#: A JSON Lines row that is not UTF-8 (Latin-1's é).
NOT_UTF8 = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'


@pytest.fixture(scope="module")
def loaded(tuned_model_dir: Path) -> tuple[Any, Any]:
    return load_finetuned(tuned_model_dir, trained_on(tuned_model_dir), four_bit=False,
                          compute_dtype="float32")  # fmt: skip


def test_batched_generation_equals_one_at_a_time(loaded: tuple[Any, Any]) -> None:
    from yoda_inference import build_prompt

    model, tokenizer = loaded
    prompts = [build_prompt(tokenizer, s) for s in SENTENCES]
    batched, tokens = generate_batch(model, tokenizer, prompts, max_new_tokens=12)
    single = [generate_response(model, tokenizer, p, max_new_tokens=12) for p in prompts]
    assert batched == single
    assert all(out.startswith(prompt) for out, prompt in zip(batched, prompts, strict=True))
    assert 0 < tokens <= 12 * len(prompts)


def test_predictions_csv(tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path) -> None:
    out = tmp_path / "predictions.csv"
    result = predict_test_set(
        tuned_model_dir, sample_test_jsonl, out,
        params=GenerationParameters(batch_size=2, max_new_tokens=8), quantization="auto",
    )  # fmt: skip
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["user_input", "reference", "extracted_response"]
    test = [json.loads(line)["messages"] for line in sample_test_jsonl.read_text().splitlines()]
    assert [r[0] for r in rows[1:]] == [m[0]["content"] for m in test]  # test-set order
    assert [r[1] for r in rows[1:]] == [m[1]["content"] for m in test]
    assert all("<|" not in r[2] for r in rows[1:])
    meta = result.metadata
    assert result.rows == meta["rows"] == len(test) == 5
    assert meta["batch_size"] == 2 and meta["base_model"] == trained_on(tuned_model_dir).base_model
    assert math.isfinite(meta["samples_per_second"]) and meta["samples_per_second"] > 0
    assert meta["tokens_per_second"] > 0 and meta["generated_tokens"] > 0


def test_cli_writes_executor_output(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path
) -> None:
    output_file = tmp_path / "executor_output.json"
    executor_input = {
        "outputs": {
            "artifacts": {
                name: {"artifacts": [{"name": name, "uri": f"gs://b/{name}"}]}
                for name in ("predictions", "base_predictions")
            },
            "outputFile": str(output_file),
        }
    }
    main(["--model-dir", str(tuned_model_dir), "--test-dataset", str(sample_test_jsonl),
          "--predictions-output", str(tmp_path / "p.csv"), "--quantization", "auto",
          "--base-predictions-output", str(tmp_path / "b.csv"),
          "--max-new-tokens", "4", "--executor-input", json.dumps(executor_input)])  # fmt: skip
    artifacts = json.loads(output_file.read_text())["artifacts"]
    meta = artifacts["predictions"]["artifacts"][0]["metadata"]
    assert meta["rows"] == 5 and meta["max_new_tokens"] == 4
    # four new tokens are too few to end a turn: every answer is cut, and counted as such
    assert meta["cut_answers"] == 5 and {"empty_answers", "repeated_answers"} <= set(meta)
    base_meta = artifacts["base_predictions"]["artifacts"][0]["metadata"]
    assert base_meta["rows"] == 5 and base_meta["adapter"] == "disabled"
    for name in ("p.csv", "b.csv"):
        with (tmp_path / name).open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["user_input", "reference", "extracted_response"] and len(rows) == 6


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


def test_base_answers_turned_off_leave_a_header_only(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path
) -> None:
    result = predict_test_set(
        tuned_model_dir, sample_test_jsonl, tmp_path / "p.csv", quantization="auto",
        params=GenerationParameters(max_new_tokens=2), base_predictions_path=tmp_path / "b.csv",
        with_base_model=False,
    )  # fmt: skip
    assert (tmp_path / "b.csv").read_text().splitlines() == [
        "user_input,reference,extracted_response"]  # fmt: skip
    assert result.base_metadata == {"rows": 0, "skipped": "with_base_model is false"}
    assert result.metadata["rows"] == 5


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-adapter", "holds no LoRA adapter"),
        ("missing-model", "does not exist"),
        ("empty-test", "is empty"),
        ("not-messages", 'line 1: expected {"messages"'),
        ("no-assistant", "needs a user and an assistant"),
    ],
)
def test_bad_inputs_leave_no_csv(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path, case: str, message: str
) -> None:
    model_dir, test = tuned_model_dir, sample_test_jsonl
    if case == "no-adapter":
        model_dir = tmp_path / "model"
        shutil.copytree(tuned_model_dir, model_dir)
        (model_dir / "adapter_model.safetensors").unlink()
    elif case == "missing-model":
        model_dir = tmp_path / "nope"
    elif case == "empty-test":
        test = write_jsonl(tmp_path / "test.jsonl", [])
    elif case == "not-messages":
        test = write_jsonl(tmp_path / "test.jsonl", [{"sentence": "a", "translation": "b"}])
    else:
        test = write_jsonl(
            tmp_path / "test.jsonl", [{"messages": [{"role": "user", "content": "a"}]}]
        )
    out = tmp_path / "out" / "predictions.csv"
    with pytest.raises(StepError, match=message):
        predict_test_set(model_dir, test, out, params=GenerationParameters(), quantization="auto")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "0"], "error: --batch-size '0': expected a whole number from 1 to"),
        (["--max-new-tokens", "-1"], "error: --max-new-tokens '-1': expected a whole number"),
        (["--max-new-tokens", "1000000000"], "error: --max-new-tokens '1000000000': expected"),
        (["--top-p", "0"], "error: --top-p '0': expected a number > 0 and ≤ 1"),
        (["--do-sample", "true", "--temperature", "0"], "error: --temperature '0': expected"),
        (["--quantization", "8bit"], "error: --quantization '8bit': expected one of"),
    ],
)
def test_cli_bad_parameters(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str,
) -> None:  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["--model-dir", str(tuned_model_dir), "--test-dataset", str(sample_test_jsonl),
              "--predictions-output", str(tmp_path / "p.csv"), *flags])  # fmt: skip
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message)
    assert not (tmp_path / "p.csv").exists()


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
    ("recorded", "in_a_run", "message"),
    [
        ("someone/else-on-the-hub", True, "error: --base-model "),  # not the run's: no download
        ("/etc", False, "has no config.json"),
        ("a/b/c; rm -rf /", False, "records base model 'a/b/c; rm -rf /': expected a hub id"),
    ],
)
def test_inference_loads_the_runs_own_base_only(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], recorded: str, in_a_run: bool, message: str,
) -> None:  # fmt: skip
    model = _copy_with(tuned_model_dir, tmp_path / "model", "hyperparameters.json",
                       base_model=recorded)  # fmt: skip
    run_base = trained_on(tuned_model_dir).base_model
    with pytest.raises(SystemExit) as exit_info:
        main(["--model-dir", str(model), "--test-dataset", str(sample_test_jsonl),
              "--predictions-output", str(tmp_path / "p.csv"), "--quantization", "auto",
              *(["--base-model", run_base] if in_a_run else [])])  # fmt: skip
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], errors
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
    ("uri", "message"),
    [
        ("gs://yoda-models/no/such/prefix", "no files found under gs://yoda-models/no/such/prefix"),
        ("gs://missing-bucket-xyz/model", "bucket missing-bucket-xyz does not exist"),
        ("/no/such/dir", "model directory /no/such/dir does not exist"),
    ],
)
def test_download_model_errors(gcs: Any, tmp_path: Path, uri: str, message: str) -> None:
    if not gcs.bucket("yoda-models").exists():
        gcs.create_bucket("yoda-models")
    with pytest.raises(StepError, match=message):
        download_model(uri, tmp_path / "local")
    assert not (tmp_path / "local").exists()


def test_download_model_from_local_dir(tmp_path: Path, tuned_model_dir: Path) -> None:
    local = download_model(str(tuned_model_dir), tmp_path / "copy")
    assert (local / "adapter_config.json").read_text() == (
        tuned_model_dir / "adapter_config.json"
    ).read_text()


def test_quick_check_command_answers_from_gcs(
    gcs: Any, tmp_path: Path, tuned_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from yoda_inference.ask import main as ask_main

    if not gcs.bucket("yoda-models").exists():
        gcs.create_bucket("yoda-models")
    for path in (p for p in tuned_model_dir.rglob("*") if p.is_file()):
        blob = gcs.bucket("yoda-models").blob(f"ask/model/{path.relative_to(tuned_model_dir)}")
        blob.upload_from_filename(str(path))
    ask_main(["gs://yoda-models/ask/model", "The Force is strong.", "Hi there.",
              "--max-new-tokens", "5", "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("> The Force is strong.\n") and "\n> Hi there.\n" in out
    assert "<|" not in out
    (cached,) = (p for p in (tmp_path / "cache").iterdir() if not p.name.startswith("."))
    assert (cached / "adapter_config.json").is_file() and (cached / ".download-complete").is_file()


def test_quick_check_refuses_empty_sentences(
    tuned_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from yoda_inference.ask import main as ask_main

    with pytest.raises(SystemExit) as exit_info:
        ask_main([str(tuned_model_dir), "  "])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.strip() == "error: give at least one non-empty sentence to answer"
    )


def test_quick_check_shows_an_empty_answer_as_such(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from yoda_inference import ask

    monkeypatch.setattr(ask, "answer", lambda model_uri, sentences, **_: ["", "Strong, it is."])
    ask.main(["some/model", "First.", "Second."])
    assert capsys.readouterr().out == (
        f"> First.\n{ask.EMPTY_ANSWER}\n\n> Second.\nStrong, it is.\n\n"
    )


def test_inference_on_a_non_utf8_dataset(
    tmp_path: Path, tuned_model_dir: Path, one_error_line: Callable[..., str]
) -> None:
    from yoda_inference.cli import main

    (tmp_path / "test.jsonl").write_bytes(NOT_UTF8)
    line = one_error_line(main, "--model-dir", str(tuned_model_dir),
                          "--test-dataset", str(tmp_path / "test.jsonl"), "--quantization", "auto",
                          "--predictions-output", str(tmp_path / "p.csv"))  # fmt: skip
    assert "is not UTF-8 text" in line and not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_adapter_is_one_line(
    tmp_path: Path, tuned_model_dir: Path, one_error_line: Callable[..., str], damage: str
) -> None:
    from yoda_inference.ask import main

    model = tmp_path / "model"
    shutil.copytree(tuned_model_dir, model)
    weights = model / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 9)
    line = one_error_line(main, str(model), "Hello there.", "--quantization", "auto")
    assert line.startswith(f"error: cannot load the LoRA adapter in {model}")
