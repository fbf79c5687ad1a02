"""Fine-tuning hyper-parameters, run plan and the trainer configs (no training here)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning.architecture import DEFAULT_TARGETS
from yoda_fine_tuning.cli import build_parser, hyperparameters_from_args, main
from yoda_fine_tuning.configs import build_lora_config, build_sft_config
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.plan import RunPlan, plan_run
from yoda_step_io import StepError
from yoda_step_io.quantization import build_bnb_config


def test_defaults_are_the_articles_recipe() -> None:
    hp = HyperParameters()
    assert (hp.lora_r, hp.lora_alpha, hp.lora_dropout) == (8, 16, 0.05)
    assert hp.target_modules == ("auto",)  # on Phi-3, the article's four (architecture.py)
    assert DEFAULT_TARGETS["phi3"] == ("o_proj", "qkv_proj", "gate_up_proj", "down_proj")
    assert (hp.per_device_train_batch_size, hp.max_seq_length, hp.num_train_epochs) == (16, 64, 10)
    assert (hp.learning_rate, hp.optim, hp.logging_steps) == (3e-4, "paged_adamw_8bit", 10)
    assert hp.packing and hp.gradient_checkpointing and hp.auto_find_batch_size
    assert (hp.quantization, hp.compute_dtype) == ("4bit", "float16")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lora_r": 0}, "lora_r must be > 0, got 0"),
        ({"lora_alpha": -4}, "lora_alpha must be > 0"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"learning_rate": -1e-4}, "learning_rate must be > 0"),
        ({"num_train_epochs": 0}, "num_train_epochs must be > 0"),
        ({"lora_dropout": 1.0}, "lora_dropout must be in [0, 1)"),
        ({"validation_fraction": 0.0}, "validation_fraction must be between 0 and 1"),
        ({"validation_fraction": 1.0}, "validation_fraction must be between 0 and 1"),
        ({"target_modules": ("auto", "o_proj")}, "or auto or all-linear alone"),
        ({"target_modules": ("q-proj",)}, "q-proj is not a module name"),
        ({"target_modules": ()}, "(none given)"),
        ({"quantization": "8bit"}, "quantization must be one of 4bit, auto, none"),
        ({"compute_dtype": "int8"}, "compute_dtype must be one of"),
    ],
)
def test_invalid_hyperparameters(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(StepError) as error:
        dataclasses.replace(HyperParameters(), **changes).validate()
    assert message in str(error.value)


def test_plan_refuses_4bit_without_cuda() -> None:
    with pytest.raises(StepError, match="4-bit quantisation needs a CUDA GPU"):
        plan_run(HyperParameters(), cuda_available=False)


def test_plan_auto_falls_back_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        plan = plan_run(HyperParameters(quantization="auto"), cuda_available=False)
    assert plan == RunPlan(use_cuda=False, use_4bit=False, optim="adamw_torch")
    assert "CUDA is not available" in caplog.text and "full-precision" in caplog.text


def test_plan_none_needs_a_cpu_optimizer() -> None:
    with pytest.raises(StepError, match="optimizer paged_adamw_8bit needs CUDA"):
        plan_run(HyperParameters(quantization="none"), cuda_available=False)
    plan = plan_run(HyperParameters(quantization="none", optim="adamw_torch"), False)
    assert plan == RunPlan(use_cuda=False, use_4bit=False, optim="adamw_torch")


def test_plan_with_cuda_keeps_the_recipe() -> None:
    assert plan_run(HyperParameters(), cuda_available=True) == RunPlan(
        True, True, "paged_adamw_8bit", "float16"
    )
    assert plan_run(HyperParameters(quantization="none"), True).use_4bit is False


def test_lora_config() -> None:
    config = build_lora_config(HyperParameters(lora_r=4, target_modules=("qkv_proj",)))
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
        "--target-modules", "qkv_proj, o_proj", "--packing", "false", "--lora-r", "16",
        "--learning-rate", "1e-4", "--quantization", "auto",
    ])  # fmt: skip
    hp = hyperparameters_from_args(args)
    assert hp.target_modules == ("qkv_proj", "o_proj")
    assert (hp.packing, hp.lora_r, hp.learning_rate, hp.quantization) == (False, 16, 1e-4, "auto")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lora-r", "0"], "error: lora_r must be > 0, got 0"),
        (["--target-modules", "wq,all-linear"], "error: target_modules wq,all-linear: give"),
        (["--validation-fraction", "2"], "error: validation_fraction must be between 0 and 1"),
        (["--quantization", "4bit"], "error: 4-bit quantisation needs a CUDA GPU"),
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


def test_hyperparameters_as_dict_is_json() -> None:
    values = json.loads(json.dumps(HyperParameters().as_dict()))
    assert values["target_modules"] == "auto"
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
