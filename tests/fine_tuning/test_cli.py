"""Fine-tuning hyper-parameters, run plan and the trainer configs (no training here)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning.architecture import DEFAULT_TARGETS
from yoda_fine_tuning.cli import build_parser, main
from yoda_fine_tuning.configs import build_lora_config, build_sft_config
from yoda_fine_tuning.hyperparams import OPTIMIZERS, HyperParameters
from yoda_fine_tuning.plan import RunPlan, plan_run
from yoda_step_io import BadValueError, StepError
from yoda_step_io.quantization import build_bnb_config
from yoda_step_io.values import from_args

#: A JSON Lines row that is not UTF-8 (Latin-1's é).
NOT_UTF8 = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'


def test_defaults_are_the_articles_recipe() -> None:
    hp = HyperParameters()
    assert (hp.lora_r, hp.lora_alpha, hp.lora_dropout) == (8, 16, 0.05)
    assert hp.lora_target_modules == ("auto",)  # on Phi-3, the article's four (architecture.py)
    assert DEFAULT_TARGETS["phi3"] == ("o_proj", "qkv_proj", "gate_up_proj", "down_proj")
    assert (hp.per_device_train_batch_size, hp.max_seq_length, hp.num_train_epochs) == (16, 64, 10)
    assert (hp.learning_rate, hp.optim, hp.logging_steps) == (3e-4, "paged_adamw_8bit", 10)
    assert hp.packing and hp.gradient_checkpointing and hp.auto_find_batch_size
    assert (hp.quantization, hp.compute_dtype) == ("4bit", "float16")


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"lora_r": 0}, "--lora-r"),
        ({"lora_alpha": -4}, "--lora-alpha"),
        ({"learning_rate": 0.0}, "--learning-rate"),
        ({"learning_rate": -1e-4}, "--learning-rate"),
        ({"num_train_epochs": 0}, "--num-train-epochs"),
        ({"lora_dropout": 1.0}, "--lora-dropout"),
        ({"validation_fraction": 0.0}, "--validation-fraction"),
        ({"validation_fraction": 1.0}, "--validation-fraction"),
        ({"lora_target_modules": ("auto", "o_proj")}, "--lora-target-modules"),
        ({"lora_target_modules": ("q-proj",)}, "--lora-target-modules"),
        ({"lora_target_modules": ()}, "--lora-target-modules"),
        ({"quantization": "8bit"}, "--quantization"),
        ({"compute_dtype": "int8"}, "--compute-dtype"),
        ({"training_seed": -5}, "--training-seed"),
        ({"training_seed": 2**32}, "--training-seed"),
        ({"max_steps": 0}, "--max-steps"),
        ({"max_steps": 10**12}, "--max-steps"),
        ({"max_steps": 1_000_000}, "--max-steps"),  # in range, but 1e9 tokens with 16 x 64
        ({"optim": "evil_optim"}, "--optim"),
        ({"per_device_train_batch_size": 10**6}, "--per-device-train-batch-size"),
    ],
)
def test_invalid_hyperparameters_name_their_flag(changes: dict[str, Any], flag: str) -> None:
    with pytest.raises(BadValueError) as error:
        dataclasses.replace(HyperParameters(), **changes).validate()
    assert error.value.flag == flag
    assert str(error.value).startswith(flag)


def test_the_optimizers_are_transformers_own() -> None:
    from transformers.training_args import OptimizerNames

    assert set(OPTIMIZERS) <= {name.value for name in OptimizerNames}


def test_plan_refuses_4bit_without_cuda() -> None:
    with pytest.raises(StepError, match="4-bit quantisation needs a CUDA GPU"):
        plan_run(HyperParameters(), cuda_available=False)


def test_plan_auto_falls_back_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        plan = plan_run(HyperParameters(quantization="auto"), cuda_available=False)
    assert plan == RunPlan(use_cuda=False, use_4bit=False, optim="adamw_torch")
    assert "CUDA is not available" in caplog.text and "full-precision" in caplog.text


def test_plan_none_needs_a_cpu_optimizer() -> None:
    with pytest.raises(BadValueError, match="--optim 'paged_adamw_8bit': it needs CUDA"):
        plan_run(HyperParameters(quantization="none"), cuda_available=False)
    plan = plan_run(HyperParameters(quantization="none", optim="adamw_torch"), False)
    assert plan == RunPlan(use_cuda=False, use_4bit=False, optim="adamw_torch")


def test_plan_with_cuda_keeps_the_recipe() -> None:
    assert plan_run(HyperParameters(), cuda_available=True) == RunPlan(
        True, True, "paged_adamw_8bit", "float16"
    )
    assert plan_run(HyperParameters(quantization="none"), True).use_4bit is False


def test_lora_config() -> None:
    config = build_lora_config(HyperParameters(lora_r=4, lora_target_modules=("qkv_proj",)))
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, 16, 0.05)
    assert set(config.target_modules) == {"qkv_proj"}
    assert config.task_type == "CAUSAL_LM" and config.bias == "none"


def test_bnb_config_is_nf4_double_quant() -> None:
    import torch

    config = build_bnb_config("bfloat16")
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_sft_config_logs_to_tensorboard_under_metrics(tmp_path: Path) -> None:
    plan = RunPlan(use_cuda=False, use_4bit=False, optim="adamw_torch")
    config = build_sft_config(HyperParameters(), plan, tmp_path / "ckpt", tmp_path / "metrics/tb")
    assert config.report_to == ["tensorboard"]
    assert config.logging_dir == str(tmp_path / "metrics/tb")
    assert config.output_dir == str(tmp_path / "ckpt")
    assert (config.max_seq_length, config.packing, config.learning_rate) == (64, True, 3e-4)
    assert config.eval_strategy == "steps" and config.optim == "adamw_torch"
    assert config.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert config.use_cpu


def test_cli_flags_map_to_hyperparameters() -> None:
    args = build_parser().parse_args([
        "--train-dataset", "t", "--model-output", "m", "--metrics-output", "x",
        "--lora-target-modules", "qkv_proj, o_proj", "--packing", "false", "--lora-r", "16",
        "--learning-rate", "1e-4", "--quantization", "auto",
    ])  # fmt: skip
    hp = from_args(HyperParameters, args)
    assert hp.lora_target_modules == ("qkv_proj", "o_proj")
    assert (hp.packing, hp.lora_r, hp.learning_rate, hp.quantization) == (False, 16, 1e-4, "auto")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lora-r", "0"], "error: --lora-r '0': expected a whole number from 1 to 1024"),
        (["--lora-target-modules", "wq,all-linear"], "error: --lora-target-modules 'wq,all"),
        (["--validation-fraction", "2"], "error: --validation-fraction '2': expected a number"),
        (["--quantization", "4bit"], "error: --quantization '4bit': 4-bit quantisation needs"),
        (["--accelerator-count", "64"], "error: --accelerator-count '64': expected a whole"),
        (["--checkpoint-dir", "/"], "error: --checkpoint-dir '/': output "),
    ],
)
def test_cli_bad_hyperparameters_exit_2_without_output(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sample_train_jsonl: Path,
    flags: list[str],
    message: str,
) -> None:
    import torch

    if "4bit" in flags and torch.cuda.is_available():
        pytest.skip("CUDA present: 4-bit is allowed")
    with pytest.raises(SystemExit) as exit_info:
        main(["--train-dataset", str(sample_train_jsonl), "--model-output", str(tmp_path / "m"),
              "--metrics-output", str(tmp_path / "x"), *flags])  # fmt: skip
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_more_ranks_than_cores_are_refused_before_any_rank_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sample_train_jsonl: Path
) -> None:
    count = (os.cpu_count() or 1) + 1
    if count > 16:
        pytest.skip("more cores here than one machine's GPUs")
    with pytest.raises(SystemExit) as exit_info:
        main(["--train-dataset", str(sample_train_jsonl), "--model-output", str(tmp_path / "m"),
              "--metrics-output", str(tmp_path / "x"),
              "--accelerator-count", str(count)])  # fmt: skip
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --accelerator-count {count}: this machine has {count - 1} CPU core(s), and "
        f"each rank is a process: at most {count - 1}"
    ]
    assert list(tmp_path.iterdir()) == []


def test_hyperparameters_as_dict_is_json() -> None:
    values = json.loads(json.dumps(HyperParameters().as_dict()))
    assert values["lora_target_modules"] == "auto"
    assert HyperParameters().numeric()["hp_lora_r"] == 8.0


@pytest.mark.parametrize(
    ("requested", "cuda", "bf16", "used"),
    [
        ("float16", True, False, "float16"),
        ("auto", True, False, "float16"),  # a T4: no bfloat16
        ("auto", True, True, "bfloat16"),  # an A100 or newer
        ("bfloat16", True, True, "bfloat16"),
        ("bfloat16", False, False, "float32"),  # the CPU fallback computes in float32
    ],
)
def test_the_compute_dtype_is_checked_against_the_device(
    requested: str, cuda: bool, bf16: bool, used: str
) -> None:
    plan = plan_run(HyperParameters(quantization="auto", compute_dtype=requested), cuda, bf16)
    assert plan.compute_dtype == used


def test_bfloat16_on_a_gpu_without_it_is_refused_before_loading() -> None:
    with pytest.raises(StepError, match=r"this GPU has no bfloat16 .*pass float16"):
        plan_run(HyperParameters(compute_dtype="bfloat16"), cuda_available=True,
                 bf16_supported=False)  # fmt: skip


def test_fine_tuning_on_a_non_utf8_dataset(
    tmp_path: Path, tiny_model_dir: Path, one_error_line: Callable[..., str]
) -> None:
    from yoda_fine_tuning.cli import main

    (tmp_path / "train.jsonl").write_bytes(NOT_UTF8)
    line = one_error_line(main, "--train-dataset", str(tmp_path / "train.jsonl"),
                          "--base-model", str(tiny_model_dir), "--quantization", "auto",
                          "--model-output", str(tmp_path / "model"),
                          "--metrics-output", str(tmp_path / "metrics"))  # fmt: skip
    assert "is not UTF-8 text (byte " in line
    assert not (tmp_path / "model").exists() and not (tmp_path / "metrics").exists()
