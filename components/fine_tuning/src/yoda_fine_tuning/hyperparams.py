"""The fine-tuning hyper-parameters: one typed object, the article's recipe as defaults, and what
each may be, declared once (each field is a flag of ``yoda-fine-tuning``).

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
from typing import Any

from yoda_step_io import BadValueError
from yoda_step_io.libraries import COMPUTE_DTYPES
from yoda_step_io.quantization import QUANTIZATION
from yoda_step_io.values import (
    BOOLEAN,
    SEED,
    check_fields,
    integer,
    number,
    one_of,
    split_names,
    text,
    value,
)

#: peft's special value: every linear layer but the output head.
ALL_LINEAR = "all-linear"
#: The base model's own LoRA targets, chosen by its architecture (architecture.py).
AUTO_TARGETS = "auto"

#: The optimizers of transformers 4.46 (``OptimizerNames``) that this image can build: torch's
#: own and bitsandbytes' (8-bit and paged ones need CUDA). tests check them against transformers.
OPTIMIZERS = (
    "adamw_torch", "adamw_torch_fused", "adamw_hf", "adafactor", "sgd", "adagrad", "rmsprop",
    "adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "lion_8bit",
    "lion_32bit", "paged_lion_8bit", "paged_lion_32bit", "rmsprop_bnb", "rmsprop_bnb_8bit",
    "rmsprop_bnb_32bit", "ademamix", "ademamix_8bit", "paged_ademamix_8bit",
    "paged_ademamix_32bit",
)  # fmt: skip

#: The Trainer's learning-rate schedules that need no extra settings.
SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts",
             "polynomial", "inverse_sqrt")  # fmt: skip

#: The most tokens one rank may train on (max_steps x batch x sequence length): weeks of a T4.
MAX_TRAINING_TOKENS = 10**9


def targets_problem(names: tuple[str, ...]) -> str | None:
    """Why ``names`` is neither ``auto`` nor ``all-linear`` alone nor module names."""
    if names in ((AUTO_TARGETS,), (ALL_LINEAR,)):
        return None
    special = {AUTO_TARGETS, ALL_LINEAR}
    if not names or special & set(names) or not all(name.isidentifier() for name in names):
        return (
            f"expected a comma list of module names (e.g. q_proj,v_proj), or {AUTO_TARGETS} "
            f"or {ALL_LINEAR} alone"
        )
    return None


TARGETS = text(
    f"{AUTO_TARGETS}, {ALL_LINEAR}, or a comma list of module names",
    targets_problem,
    kind=tuple,
    convert=split_names,
)


@dataclass(frozen=True)
class HyperParameters:
    """Everything that shapes a fine-tuning run. ``validate()`` before any heavy work."""

    quantization: str = value(
        "4bit", QUANTIZATION, "4bit (needs CUDA), auto (4bit where CUDA is) or none"
    )
    compute_dtype: str = value("float16", one_of(*COMPUTE_DTYPES), "the 4-bit matmuls' dtype")
    lora_r: int = value(8, integer(1, 1024), "LoRA rank")
    lora_alpha: int = value(16, integer(1, 4096), "LoRA alpha")
    lora_dropout: float = value(0.05, number(ge=0.0, lt=1.0), "LoRA dropout")
    lora_target_modules: tuple[str, ...] = value(
        (AUTO_TARGETS,), TARGETS, "LoRA targets: auto is the architecture's own (architecture.py)"
    )
    learning_rate: float = value(3e-4, number(gt=0.0, le=10.0), "peak learning rate")
    num_train_epochs: float = value(10.0, number(gt=0.0, le=1000.0), "epochs, unless max_steps")
    max_steps: int = value(
        -1,
        integer(
            1, 1_000_000, also=(-1,), words="-1 (the epochs decide) or 1 to 1000000, and at "
            f"most {MAX_TRAINING_TOKENS:.0e} tokens per rank (x batch x sequence length)",
        ),
        "optimizer steps (-1: the epochs decide)",
    )  # fmt: skip
    per_device_train_batch_size: int = value(16, integer(1, 1024), "sequences per step, per rank")
    auto_find_batch_size: bool = value(True, BOOLEAN, "halve the batch on CUDA out-of-memory")
    max_seq_length: int = value(64, integer(8, 16384), "tokens per training sequence")
    packing: bool = value(True, BOOLEAN, "pack conversations into full sequences")
    optim: str = value("paged_adamw_8bit", one_of(*OPTIMIZERS), "a transformers optimizer")
    gradient_checkpointing: bool = value(True, BOOLEAN, "recompute activations: less memory")
    logging_steps: int = value(10, integer(1, 100_000), "a loss (and validation) every N steps")
    lr_scheduler_type: str = value("linear", one_of(*SCHEDULES), "the learning rate's schedule")
    warmup_ratio: float = value(0.0, number(ge=0.0, lt=1.0), "share of the steps warming up")
    weight_decay: float = value(0.0, number(ge=0.0, le=1.0), "AdamW's weight decay")
    neftune_noise_alpha: float = value(
        0.0, number(ge=0.0, le=100.0), "NEFTune noise on the input embeddings (0: off)"
    )
    completion_only_loss: bool = value(
        False, BOOLEAN, "the loss on the assistant's answers alone (needs packing false)"
    )
    validation_fraction: float = value(
        0.1, number(gt=0.0, lt=1.0), "share of the train split held out for validation"
    )
    training_seed: int = value(42, SEED, "seed of the LoRA initialisation, shuffles and dropout")

    def validate(self) -> None:
        """Raise :class:`BadValueError` naming the first value that is not allowed (its flag)."""
        check_fields(self)
        if self.completion_only_loss and self.packing:
            raise BadValueError(
                "--completion-only-loss", True, "it needs --packing false (a packed sequence "
                "mixes several conversations, so no answer can be found in it)",
            )  # fmt: skip
        tokens = self.max_steps * self.tokens_per_step()
        if tokens > MAX_TRAINING_TOKENS:
            raise BadValueError(
                "--max-steps",
                self.max_steps,
                f"x {self.per_device_train_batch_size} sequences x {self.max_seq_length} tokens "
                f"is {tokens:.3g} tokens per rank: at most {MAX_TRAINING_TOKENS:.0e}",
            )

    def tokens_per_step(self) -> int:
        """Tokens in one optimizer step with packing: every row is ``max_seq_length`` tokens."""
        return self.per_device_train_batch_size * self.max_seq_length

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly values (target modules as a comma-separated string)."""
        values = dataclasses.asdict(self)
        values["lora_target_modules"] = ",".join(self.lora_target_modules)
        return values

    def numeric(self) -> dict[str, float]:
        """Numeric hyper-parameters, ``hp_``-prefixed: scalar metrics for the Metrics artifact."""
        return {
            f"hp_{name}": float(given)
            for name, given in dataclasses.asdict(self).items()
            if isinstance(given, int | float)
        }
