"""How the run is set up (``configs.py``): the plan (4-bit and the 8-bit optimizers need CUDA,
``auto`` falls back loudly to a full-precision CPU run, the compute dtype is the one the device
has), then what peft and trl are told (the LoRA adapter and the Trainer's settings); and the 4-bit
base's config they train on (``yoda_step_io.quantization``, shared with inference)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from yoda_fine_tuning.configs import RunPlan, build_lora_config, build_sft_config, plan_run
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_step_io import BadValueError, StepError
from yoda_step_io.quantization import build_bnb_config


def test_plan_refuses_4bit_without_cuda() -> None:
    with pytest.raises(StepError, match=r"^--quantization '4bit': .*needs a CUDA GPU"):
        plan_run(HyperParameters(), cuda_available=False)


def test_plan_auto_falls_back_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        plan = plan_run(HyperParameters(quantization="auto"), cuda_available=False)
    assert plan == RunPlan(use_cuda=False, use_4bit=False, optim="adamw_torch")
    assert "CUDA is not available" in caplog.text and "full-precision" in caplog.text


def test_plan_none_needs_a_cpu_optimizer() -> None:
    with pytest.raises(BadValueError, match=r"^--optim 'paged_adamw_8bit': it needs CUDA"):
        plan_run(HyperParameters(quantization="none"), cuda_available=False)
    plan = plan_run(HyperParameters(quantization="none", optim="adamw_torch"), False)
    assert plan == RunPlan(use_cuda=False, use_4bit=False, optim="adamw_torch")


def test_plan_with_cuda_keeps_the_recipe() -> None:
    assert plan_run(HyperParameters(), cuda_available=True) == RunPlan(
        True, True, "paged_adamw_8bit", "float16"
    )
    assert plan_run(HyperParameters(quantization="none"), True).use_4bit is False


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
    with pytest.raises(StepError, match=r"^--compute-dtype 'bfloat16': .*no bfloat16.*float16"):
        plan_run(HyperParameters(compute_dtype="bfloat16"), cuda_available=True,
                 bf16_supported=False)  # fmt: skip


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
