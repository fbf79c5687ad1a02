"""The fine-tuning hyper-parameters: one typed object, the article's recipe as defaults.

Recipe (dvgodoy, "Fine-Tuning Your First LLM"): 4-bit NF4 base with double quantisation,
LoRA r=8, alpha=16, dropout 0.05 on ``o_proj, qkv_proj, gate_up_proj, down_proj`` (``auto``
on Phi-3); SFT with
batch 16 (``auto_find_batch_size``), sequences of 64 tokens, packing, 10 epochs, lr 3e-4,
``paged_adamw_8bit``, gradient checkpointing, a log every 10 steps. Compute dtype float16 (the
article's float32 is slower on a T4, which has no bfloat16).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from yoda_step_io import StepError
from yoda_step_io.libraries import COMPUTE_DTYPES
from yoda_step_io.quantization import check_quantization_mode
from yoda_step_io.vocabulary import ALL_LINEAR, AUTO_TARGETS

Quantization = Literal["4bit", "auto", "none"]


@dataclass(frozen=True)
class HyperParameters:
    """Everything that shapes a fine-tuning run. ``validate()`` before any heavy work."""

    # quantisation of the base model: "4bit" needs CUDA; "auto" = 4bit with CUDA, else full
    # precision (logged); "none" = full precision everywhere
    quantization: Quantization = "4bit"
    compute_dtype: str = "float16"
    # LoRA
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    # auto: the architecture's own (Phi-3: the article's four, see architecture.py); all-linear;
    # or names, checked against the loaded model
    target_modules: tuple[str, ...] = (AUTO_TARGETS,)
    # SFT
    learning_rate: float = 3e-4
    num_train_epochs: float = 10.0
    max_steps: int = -1  # > 0 overrides the epochs (quick runs)
    per_device_train_batch_size: int = 16
    auto_find_batch_size: bool = True
    max_seq_length: int = 64
    packing: bool = True
    optim: str = "paged_adamw_8bit"
    gradient_checkpointing: bool = True
    logging_steps: int = 10
    validation_fraction: float = 0.1
    seed: int = 42

    def validate(self) -> None:
        """Raise :class:`StepError` naming the first invalid value and what is allowed."""
        check_quantization_mode(self.quantization)
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise StepError(
                f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, "
                f"got {self.compute_dtype!r}"
            )
        positive = {
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "learning_rate": self.learning_rate,
            "num_train_epochs": self.num_train_epochs,
            "per_device_train_batch_size": self.per_device_train_batch_size,
            "max_seq_length": self.max_seq_length,
            "logging_steps": self.logging_steps,
        }
        for name, value in positive.items():
            if not value > 0:
                raise StepError(f"{name} must be > 0, got {value}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise StepError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise StepError(
                f"validation_fraction must be between 0 and 1 (exclusive), "
                f"got {self.validation_fraction}"
            )
        special = {AUTO_TARGETS, ALL_LINEAR}
        names = self.target_modules
        if not names or (special & set(names) and len(names) > 1):
            raise StepError(
                f"target_modules {','.join(names) or '(none given)'}: give module names, or "
                f"{AUTO_TARGETS} or {ALL_LINEAR} alone"
            )
        bad = [name for name in names if name not in special and not name.isidentifier()]
        if bad:
            raise StepError(f"target_modules: {', '.join(bad)} is not a module name")

    def tokens_per_step(self) -> int:
        """Tokens in one optimizer step with packing: every row is ``max_seq_length`` tokens."""
        return self.per_device_train_batch_size * self.max_seq_length

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly values (target modules as a comma-separated string)."""
        values = dataclasses.asdict(self)
        values["target_modules"] = ",".join(self.target_modules)
        return values

    def numeric(self) -> dict[str, float]:
        """Numeric hyper-parameters, ``hp_``-prefixed: scalar metrics for the Metrics artifact."""
        return {
            f"hp_{name}": float(value)
            for name, value in dataclasses.asdict(self).items()
            if isinstance(value, int | float)
        }
