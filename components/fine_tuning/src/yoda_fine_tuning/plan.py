"""How the hyper-parameters play out on this machine: quantisation, optimizer, compute dtype."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_step_io import BadValueError
from yoda_step_io.libraries import compute_dtype_for
from yoda_step_io.quantization import plan_quantization

logger = logging.getLogger(__name__)

_BNB_OPTIMIZERS = ("8bit", "paged_")


def _needs_bnb_optimizer(optim: str) -> bool:
    return any(marker in optim for marker in _BNB_OPTIMIZERS)


@dataclass(frozen=True)
class RunPlan:
    """How the hyper-parameters play out on this machine."""

    use_cuda: bool
    use_4bit: bool
    optim: str
    compute_dtype: str = "float32"  # as used: checked against the device (compute_dtype_for)

    @property
    def needs_bitsandbytes(self) -> bool:
        """4-bit weights or an 8-bit/paged optimizer: both come from bitsandbytes."""
        return self.use_4bit or _needs_bnb_optimizer(self.optim)


def plan_run(hp: HyperParameters, cuda_available: bool, bf16_supported: bool = False) -> RunPlan:
    """Decide quantisation, optimizer and compute dtype for this machine; never fall back
    silently.

    Raises:
        BadValueError: 4-bit or a bitsandbytes optimizer was asked for explicitly without CUDA;
            bfloat16 on a GPU without it.
    """
    dtype = compute_dtype_for(hp.compute_dtype, cuda_available, bf16_supported)
    use_4bit = plan_quantization(hp.quantization, cuda_available)
    if cuda_available:
        if dtype != hp.compute_dtype:
            logger.info("compute_dtype %s: %s on this GPU", hp.compute_dtype, dtype)
        return RunPlan(True, use_4bit, hp.optim, dtype)
    optim = hp.optim
    if _needs_bnb_optimizer(hp.optim):
        if hp.quantization != "auto":
            raise BadValueError(
                "--optim", hp.optim, "it needs CUDA (bitsandbytes): pass adamw_torch, or "
                "--quantization auto",
            )  # fmt: skip
        optim = "adamw_torch"
    logger.warning(
        "CUDA is not available: training the same LoRA adapter on a full-precision base "
        "on the CPU (quantization=%s, optimizer %s)",
        hp.quantization,
        optim,
    )
    return RunPlan(use_cuda=False, use_4bit=False, optim=optim, compute_dtype=dtype)
