"""What a finished run publishes: the adapter and tokenizer with their metadata in the Model
artifact; the scalar metrics and the loss curves in the Metrics artifact."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoda_fine_tuning.configs import RunPlan
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_step_io.contract import (
    HYPERPARAMETERS_FILE,
    LOG_HISTORY_FILE,
    METRICS_FILE,
    TRAINING_METRICS_FILE,
)

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase


def run_metrics(
    losses: dict[str, float],
    train_output: Any,
    datasets: dict[str, Dataset],
    parameters: tuple[int, int],
    plan: RunPlan,
    hp: HyperParameters,
    row_tokens: float,
    world_size: int = 1,
) -> dict[str, float]:
    """The Metrics artifact's scalars, with the numeric hyper-parameters to compare runs by, and
    the tokens/s of all ranks (``row_tokens`` per training row: the sequence length when packed;
    the Trainer's samples/s counts every rank's; runtime and memory are rank 0's); with several
    ranks, their number and the effective batch."""
    trainable, total = parameters
    samples_per_second = float(train_output.metrics["train_samples_per_second"])
    ranks = {}
    if world_size > 1:
        ranks = {
            "world_size": float(world_size),
            "effective_batch_size": float(hp.per_device_train_batch_size * world_size),
        }
    return {
        **losses,
        "train_runtime_s": float(train_output.metrics["train_runtime"]),
        "train_samples_per_second": samples_per_second,
        "tokens_per_second": samples_per_second * row_tokens,
        "train_steps": float(train_output.global_step),
        "train_conversations": float(len(datasets["train"])),
        "validation_conversations": float(len(datasets["validation"])),
        "trainable_params": float(trainable),
        "total_params": float(total),
        "trainable_percent": 100.0 * trainable / total,
        "peak_memory_mb": _peak_memory_mb(plan.use_cuda),
        **hp.numeric(),
        **ranks,
    }


def _peak_memory_mb(use_cuda: bool) -> float:
    if use_cuda:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def model_metadata(
    hp: HyperParameters, base_model: str, plan: RunPlan, revision: str
) -> dict[str, Any]:
    """The Model artifact's metadata: the hyper-parameters and base as given, the plan as used."""
    return {
        **hp.as_dict(),
        "base_model": base_model,
        "adapter": "lora",
        "quantized_4bit": plan.use_4bit,
        "optim": plan.optim,  # as used: adamw_torch where the 8-bit optimizer needs CUDA
        "compute_dtype_used": plan.compute_dtype,
        "base_model_revision": revision,
    }


def save_adapter(
    model: Any, tokenizer: PreTrainedTokenizerBase, base_model: str, model_output: Path
) -> None:
    """The adapter (never merged) and the tokenizer, as the inference step loads them."""
    # the adapter names the base as the user gave it (gs://…, a hub id), not a local copy
    for config in model.peft_config.values():
        config.base_model_name_or_path = base_model
    model.save_pretrained(model_output)
    tokenizer.save_pretrained(model_output)


def write_records(
    model_output: Path,
    metrics_output: Path,
    metadata: dict[str, Any],
    metrics: dict[str, float],
    history: list[dict[str, Any]],
) -> None:
    """The metadata and metrics beside the adapter; the metrics and the loss curves (training
    and validation, by step, for the report) in the Metrics artifact."""
    (model_output / HYPERPARAMETERS_FILE).write_text(json.dumps(metadata, indent=2))
    (model_output / TRAINING_METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    (metrics_output / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    (metrics_output / LOG_HISTORY_FILE).write_text(json.dumps(history, indent=1), encoding="utf-8")
