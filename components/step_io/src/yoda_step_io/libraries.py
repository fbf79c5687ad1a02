"""Settings for the ML libraries of a step process, made before they are imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from yoda_step_io.cli import BadValueError
from yoda_step_io.progress import interactive

#: Compute dtypes a step accepts; ``auto`` is bfloat16 where the GPU has it, else float16.
COMPUTE_DTYPES = ("auto", "float16", "bfloat16", "float32")


def compute_dtype_for(requested: str, cuda: bool, bf16_supported: bool) -> str:
    """The compute dtype this device really gets, checked before any model loads.

    A CPU computes in float32 whatever was asked (the full-precision fallback). On a GPU without
    bfloat16 (a T4), ``bfloat16`` is refused (it would be emulated, slowly, without a word) and
    ``auto`` becomes float16.

    Raises:
        StepError: bfloat16 on a GPU without it.
    """
    if not cuda:
        return "float32"
    if requested == "auto":
        return "bfloat16" if bf16_supported else "float16"
    if requested == "bfloat16" and not bf16_supported:
        raise BadValueError(
            "--compute-dtype", requested, "this GPU has no bfloat16 (a T4 or older): pass "
            "float16 (the fast choice there), float32, or auto",
        )  # fmt: skip
    return requested


def cuda_here() -> bool:
    """Whether this machine shows an NVIDIA GPU, told without importing torch (its device
    files): what a check before any heavy import goes by; torch decides once loaded."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def device_support() -> tuple[bool, bool]:
    """This machine's ``(cuda, native bfloat16)``, the facts :func:`compute_dtype_for` takes
    (torch imported here)."""
    import torch

    cuda = torch.cuda.is_available()
    # native bfloat16 only: torch also answers yes where it would emulate it (a T4)
    return cuda, cuda and torch.cuda.is_bf16_supported(including_emulation=False)


def device_compute_dtype(requested: str) -> str:
    """:func:`compute_dtype_for` on this machine's device."""
    return compute_dtype_for(requested, *device_support())


def skip_bitsandbytes() -> None:
    """Let transformers and peft see no bitsandbytes in this process.

    Call it where nothing is quantised (no CUDA, or ``quantization=none``) and before transformers
    or peft is imported. peft imports bitsandbytes whenever a LoRA layer is created or loaded, and
    bitsandbytes 0.48 on a machine without CUDA then costs 6-14 s: it imports torch's compiler
    stack, runs ``pip list`` in a shell, and starts torch-inductor's compile workers, whose shutdown
    adds seconds at exit. Does nothing once bitsandbytes is imported.
    """
    if "bitsandbytes" not in sys.modules:
        # `import bitsandbytes` now fails and importlib.util.find_spec() answers None, which is
        # how transformers and peft decide that it is not installed
        sys.modules["bitsandbytes"] = None  # type: ignore[assignment]


def quiet_progress_bars() -> bool:
    """In a log (not a terminal), turn off the Hugging Face libraries' redrawn progress bars.

    Returns:
        Whether the bars are off (the caller then logs progress lines of its own).
    """
    if interactive():
        return False
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    return True
