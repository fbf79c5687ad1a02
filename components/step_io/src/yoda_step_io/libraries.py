"""Settings for the ML libraries of a step process, made before they are imported."""

from __future__ import annotations

import os
import sys

from yoda_step_io.progress import interactive


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
