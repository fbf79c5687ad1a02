"""A real (short) CPU fine-tuning run on the tiny Phi-3 model, and bad inputs to the step."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning import train as train_module
from yoda_fine_tuning.architecture import DEFAULT_TARGETS
from yoda_fine_tuning.checkpoints import checkpoint_folder_for
from yoda_fine_tuning.cli import main
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import FineTuneResult, fine_tune
from yoda_step_io import StepError

QUICK = HyperParameters(
    quantization="auto", max_steps=4, logging_steps=2, learning_rate=1e-2, num_train_epochs=1
)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, sample_train_jsonl: Path
) -> tuple[FineTuneResult, Path]:
    out = tmp_path_factory.mktemp("fine-tuned")
    result = fine_tune(
        sample_train_jsonl, out / "model", out / "metrics", base_model=str(tiny_model_dir), hp=QUICK
    )
    return result, out


def test_lora_weights_change_and_base_weights_do_not(
    trained: tuple[FineTuneResult, Path], tiny_model_dir: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    result, _ = trained
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    lora_b = {n: p for n, p in result.model.named_parameters() if "lora_B" in n}
    assert lora_b, "no LoRA parameters in the trained model"
    assert all(p.abs().sum() > 0 for p in lora_b.values()), "lora_B starts at 0 and must move"
    checked = 0
    for name, parameter in result.model.named_parameters():
        if "lora_" in name:
            continue
        key = name.removeprefix("base_model.model.").replace(".base_layer", "")
        assert torch.equal(parameter.detach().cpu(), base[key]), f"base weight {key} changed"
        checked += 1
    assert checked == len(base)


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


def test_cli_reports_metrics_and_model_metadata_to_kfp(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path
) -> None:
    output_file = tmp_path / "executor_output.json"
    executor_input = {
        "outputs": {
            "artifacts": {
                "model": {"artifacts": [{"name": "model", "uri": "gs://b/model"}]},
                "metrics": {"artifacts": [{"name": "metrics", "uri": "gs://b/metrics"}]},
            },
            "outputFile": str(output_file),
        }
    }
    main([
        "--train-dataset", str(sample_train_jsonl), "--base-model", str(tiny_model_dir),
        "--model-output", str(tmp_path / "model"), "--metrics-output", str(tmp_path / "metrics"),
        "--quantization", "auto", "--max-steps", "1",
        "--executor-input", json.dumps(executor_input),
    ])  # fmt: skip
    artifacts = json.loads(output_file.read_text())["artifacts"]
    metrics = artifacts["metrics"]["artifacts"][0]["metadata"]
    model = artifacts["model"]["artifacts"][0]["metadata"]
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["eval_loss"])
    assert metrics["train_steps"] == 1
    assert model["base_model"] == str(tiny_model_dir) and model["lora_r"] == 8


def test_resumes_from_a_checkpoint(
    tmp_path: Path,
    tiny_model_dir: Path,
    sample_train_jsonl: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A preempted run (checkpoints left behind) resumes where it stopped, its retry writing to
    the same output paths; torch.load stays weights-only (no full unpickling is turned on)."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # unset by the step
    checkpoints = tmp_path / "checkpoints"
    owned = checkpoint_folder_for(tmp_path / "m", checkpoints)
    hp = dataclasses.replace(QUICK, max_steps=2, logging_steps=1)
    with monkeypatch.context() as patch:  # keep the checkpoints, as a preempted run would
        patch.setattr(train_module, "release_checkpoint_folder", lambda folder: None)
        fine_tune(sample_train_jsonl, tmp_path / "m", tmp_path / "x",
                  base_model=str(tiny_model_dir), hp=hp, checkpoint_dir=checkpoints)  # fmt: skip
    assert (owned / "checkpoint-2").is_dir()
    with caplog.at_level(logging.INFO):
        result = fine_tune(
            sample_train_jsonl, tmp_path / "m", tmp_path / "x", base_model=str(tiny_model_dir),
            hp=dataclasses.replace(hp, max_steps=4), checkpoint_dir=checkpoints,
        )  # fmt: skip
    assert f"resuming from checkpoint {owned / 'checkpoint-2'}" in caplog.text
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    assert result.metrics["train_steps"] == 4
    assert not owned.exists() and checkpoints.is_dir()


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "is empty"),
        ([{"text": "hello"}], 'line 1: expected {"messages"'),
        ([{"messages": [{"role": "user", "content": "hi"}]}], "needs a user and an assistant"),
        ([{"messages": [{"role": "bot", "content": "hi"}]}], "every message needs a role"),
        (["not json"], "line 1: not valid JSON"),
        (
            [
                {
                    "messages": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b"},
                    ]
                }
            ],
            "need at least 2",
        ),
    ],
    ids=["empty", "not-messages", "no-assistant", "bad-role", "not-json", "one-row"],
)
def test_bad_datasets_fail_clearly_without_output(
    tmp_path: Path, tiny_model_dir: Path, lines: list[Any], message: str
) -> None:
    data = write_lines(tmp_path / "train.jsonl", lines)
    with pytest.raises(StepError) as error:
        fine_tune(data, tmp_path / "model", tmp_path / "metrics",
                  base_model=str(tiny_model_dir), hp=QUICK)  # fmt: skip
    assert message in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl"]


def test_missing_base_model_dir(tmp_path: Path, sample_train_jsonl: Path) -> None:
    with pytest.raises(StepError, match=r"--base-model '.*nope': no such folder"):
        fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics",
                  base_model=str(tmp_path / "nope"), hp=QUICK)  # fmt: skip


def test_tiny_model_is_deterministic(tmp_path: Path, tiny_model_dir: Path) -> None:
    from yoda_devmodels.tiny_model import make_tiny_model

    again = make_tiny_model(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name


def test_tiny_model_has_phi3_tokens_and_template(tiny_model_dir: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert AutoConfig.from_pretrained(tiny_model_dir).model_type == "phi3"
    for token in ("<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id, token
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|user|>\nHi<|end|>\n<|assistant|>\n"


@pytest.mark.gpu
def test_qlora_4bit_on_gpu(tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: 4-bit quantisation (bitsandbytes) has no CPU path")
    hp = dataclasses.replace(QUICK, quantization="4bit", optim="paged_adamw_8bit")
    result = fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics",
                       base_model=str(tiny_model_dir), hp=hp)  # fmt: skip
    assert result.model_metadata["quantized_4bit"] is True
    assert math.isfinite(result.metrics["train_loss"]) and math.isfinite(
        result.metrics["eval_loss"]
    )
    assert any(p.__class__.__name__ == "Params4bit" for p in result.model.parameters())


def test_the_same_seed_trains_the_same_adapter(
    trained: tuple[FineTuneResult, Path], tmp_path: Path, tiny_model_dir: Path,
    sample_train_jsonl: Path,
) -> None:  # fmt: skip
    """LoRA's initial weights and trl's packing shuffle are seeded: two runs are alike (and a run
    in the step image equals one on the host, tests/e2e/test_docker_images.py)."""
    first, first_out = trained
    base = str(tiny_model_dir)
    again = fine_tune(
        sample_train_jsonl, tmp_path / "a", tmp_path / "am", base_model=base, hp=QUICK
    )
    assert again.metrics["train_loss"] == first.metrics["train_loss"]
    weights = "adapter_model.safetensors"
    assert (tmp_path / "a" / weights).read_bytes() == (first_out / "model" / weights).read_bytes()
    reseeded = dataclasses.replace(QUICK, training_seed=7)
    other = fine_tune(
        sample_train_jsonl, tmp_path / "b", tmp_path / "bm", base_model=base, hp=reseeded
    )
    assert other.metrics["train_loss"] != first.metrics["train_loss"]


def test_a_diverged_run_fails_and_publishes_no_model(
    tmp_path: Path, nan_model_dir: Path, sample_train_jsonl: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A loss gone NaN (here from a broken base): one error line, exit 2, no Model or Metrics
    output, no checkpoint to resume from; the user's files beside the checkpoints are left
    alone."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "unrelated.txt").write_text("not the step's")
    with pytest.raises(SystemExit) as exit_info:
        main(["--train-dataset", str(sample_train_jsonl), "--base-model", str(nan_model_dir),
              "--model-output", str(tmp_path / "model"), "--metrics-output", str(tmp_path / "m"),
              "--checkpoint-dir", str(tmp_path / "checkpoints"), "--quantization", "auto",
              "--max-steps", "6", "--logging-steps", "1"])  # fmt: skip
    assert exit_info.value.code == 2
    (line,) = [text for text in capsys.readouterr().err.splitlines() if text.startswith("error:")]
    assert re.fullmatch(
        r"error: training diverged: the (validation|training) loss is (nan|-?inf) at step \d+, "
        r"so no model is published: try a lower learning_rate \(now 0.0003\) or compute_dtype "
        r"float32 \(now float16\)", line)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["unrelated.txt"]


def test_first_non_finite_names_the_loss_and_the_step() -> None:
    from yoda_fine_tuning.guards import first_non_finite

    history = [{"loss": 2.0, "step": 1}, {"eval_loss": 1.9, "step": 2},
               {"loss": float("inf"), "step": 3},
               {"eval_loss": float("nan"), "step": 3}]  # fmt: skip
    assert first_non_finite(history) == ("loss", float("inf"), 3)
    assert first_non_finite(history[:2]) is None


@pytest.mark.parametrize(
    ("recipe", "status"),
    [({"lora_r": 4, "max_steps": 2, "learning_rate": 0.01}, "finished"),
     ({"max_seq_length": 16384}, "failed")],
)  # fmt: skip
def test_a_recipe_says_how_it_went_in_its_outcome(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path, recipe: dict[str, Any],
    status: str,
) -> None:  # fmt: skip
    """One recipe of a sweep: the recipe over the flags; its outcome finished (its losses, its
    model) or failed (the reason: no 16k-token sequence packs from the sample), the step
    ending well either way so that the other recipes go on."""
    main(["--train-dataset", str(sample_train_jsonl), "--base-model", str(tiny_model_dir),
          "--model-output", str(tmp_path / "model"), "--metrics-output", str(tmp_path / "m"),
          "--quantization", "auto", "--max-steps", "3", "--recipe", json.dumps(recipe),
          "--outcome-output", str(tmp_path / "outcome"),
          "--model-uri", "gs://b/model"])  # fmt: skip
    outcome = json.loads((tmp_path / "outcome").read_text())
    assert (outcome["recipe"], outcome["status"]) == (recipe, status)
    if status == "failed":
        assert "too little text to pack into sequences of 16384 tokens" in outcome["reason"]
        assert not (tmp_path / "model").exists() and not (tmp_path / "m").exists()
        return
    assert json.loads((tmp_path / "model" / "adapter_config.json").read_text())["r"] == 4
    assert outcome["train_steps"] == 2 and outcome["model_uri"] == "gs://b/model"
    assert outcome["metrics_uri"] == str(tmp_path / "m")
    assert math.isfinite(outcome["validation_answer_loss"]) and outcome["tokens_per_second"] > 0
    hyperparameters = json.loads((tmp_path / "model" / "hyperparameters.json").read_text())
    assert hyperparameters["learning_rate"] == 0.01


def test_the_answer_loss_is_the_answers_alone(tiny_model_dir: Path) -> None:
    """The validation measure scores the answer's tokens (and its end of turn), not the
    prompt's: a longer question changes nothing in what is counted."""
    from transformers import AutoTokenizer

    from yoda_fine_tuning.validation import answer_token_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    answer = {"role": "assistant", "content": "Strong, the Force is."}
    short = answer_token_ids(tokenizer, [{"role": "user", "content": "Hi."}, answer])
    long = answer_token_ids(tokenizer, [{"role": "user", "content": "Hi there, how are you?"},
                                        answer])  # fmt: skip
    assert short[0][short[1] :] == long[0][long[1] :]
    assert tokenizer.decode(short[0][short[1] :]).startswith("Strong, the Force is.")
