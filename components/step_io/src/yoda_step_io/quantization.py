"""4-bit or full precision: decided, and the 4-bit config built, once for every step that loads
a base model (fine-tuning and inference), so that both load the same weights the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from yoda_step_io.cli import StepError
from yoda_step_io.vocabulary import QUANTIZATION_MODES

if TYPE_CHECKING:
    from transformers import BitsAndBytesConfig


def check_quantization_mode(mode: str) -> None:
    """Raises :class:`StepError` for a mode that is not 4bit, auto or none."""
    if mode not in QUANTIZATION_MODES:
        raise StepError(
            f"quantization must be one of {', '.join(QUANTIZATION_MODES)}, got {mode!r}"
        )


def plan_quantization(mode: str, cuda: bool) -> bool:
    """Whether the base is loaded in 4-bit: where asked (needs CUDA) or where ``auto`` finds
    CUDA; full precision otherwise. Never falls back silently: ``4bit`` without CUDA is refused.

    Raises:
        StepError: an unknown mode, or ``4bit`` without CUDA.
    """
    check_quantization_mode(mode)
    if mode == "4bit" and not cuda:
        raise StepError(
            "4-bit quantisation needs a CUDA GPU and none is visible: run on a GPU, or pass "
            "--quantization auto (4-bit on CUDA, full precision elsewhere) or --quantization none"
        )
    return cuda and mode != "none"


def build_bnb_config(compute_dtype: str) -> BitsAndBytesConfig:
    """4-bit NF4 with double quantisation; compute in ``compute_dtype`` (a torch dtype's name,
    as checked against the device). torch and transformers are imported here, not on import."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )
