"""4-bit or full precision: decided, and the 4-bit config built, once for every step that loads
a base model (fine-tuning and inference), so that both load the same weights the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from yoda_step_io.cli import BadValueError
from yoda_step_io.values import one_of

if TYPE_CHECKING:
    from transformers import BitsAndBytesConfig

#: How the base model is loaded: "4bit" needs CUDA; "auto" = 4bit with CUDA, else full precision.
QUANTIZATION = one_of("4bit", "auto", "none")


def plan_quantization(mode: str, cuda: bool) -> bool:
    """Whether the base is loaded in 4-bit: where asked (needs CUDA) or where ``auto`` finds
    CUDA; full precision otherwise. Never falls back silently: ``4bit`` without CUDA is refused.

    Raises:
        BadValueError: ``4bit`` without CUDA.
    """
    if mode == "4bit" and not cuda:
        raise BadValueError(
            "--quantization", mode, "4-bit quantisation needs a CUDA GPU and none is visible: "
            "run on a GPU, or pass auto (4-bit on CUDA, full precision elsewhere) or none",
        )  # fmt: skip
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
