"""A diverged run fails: a non-finite training or validation loss stops training at once, and the
step ends with one line instead of publishing an adapter that inference would then use."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_step_io import StepError

LOSSES = ("loss", "eval_loss")


class RecipeError(StepError):
    """The recipe failed (it diverged, or cannot make one training sequence): in a sweep, the
    recipe is marked failed and the others go on."""


def first_non_finite(history: Sequence[Mapping[str, Any]]) -> tuple[str, float, int] | None:
    """The first logged loss that is NaN or infinite: (name, value, step)."""
    for entry in history:
        for name in LOSSES:
            value = entry.get(name)
            if isinstance(value, int | float) and not math.isfinite(value):
                return name, float(value), int(entry.get("step", 0))
    return None


def check_converging(history: Sequence[Mapping[str, Any]], final: Mapping[str, float],
                     hp: HyperParameters) -> None:  # fmt: skip
    """Raise :class:`StepError` if a loss went non-finite during training or at the end.

    Raises:
        StepError: which loss, at which step, and what to try.
    """
    found = first_non_finite(history)
    if found is None:
        found = next(((name, value, -1) for name, value in final.items()
                      if not math.isfinite(value)), None)  # fmt: skip
    if found is None:
        return
    name, value, step = found
    where = f"at step {step}" if step >= 0 else "at the end"
    label = {"loss": "training loss", "train_loss": "training loss"}.get(name, "validation loss")
    raise RecipeError(
        f"training diverged: the {label} is {value} {where}, so no model is published: try a "
        f"lower learning_rate (now {hp.learning_rate:g}) or compute_dtype float32 "
        f"(now {hp.compute_dtype})"
    )


def stop_on_non_finite() -> Any:
    """A ``TrainerCallback`` that stops training at the first non-finite logged loss (no point
    spending GPU hours on NaNs); :func:`check_converging` then fails the step."""
    from transformers import TrainerCallback

    class StopOnNonFinite(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if first_non_finite([logs or {}]) is not None:
                control.should_training_stop = True

    return StopOnNonFinite()
