"""What watches the Trainer while it runs.

A diverged run fails: a non-finite training or validation loss stops training at once, and the
step ends with one line instead of publishing an adapter that inference would then use. In a log,
the progress is a line every few percent (loss, tokens/s, ETA), and the TensorBoard writers are
closed at the end.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_step_io import StepError
from yoda_step_io.progress import ProgressLog

logger = logging.getLogger("yoda_fine_tuning.train")  # the progress lines are the run's

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


def progress_callback(tokens_per_step: int) -> Any:
    """A ``TrainerCallback`` that stands in for the Trainer's bar and printed dicts in a log.

    Args:
        tokens_per_step: tokens in one optimizer step (batch x sequence length), for tokens/s.
    """
    from transformers import TrainerCallback

    class LogProgress(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.progress: ProgressLog | None = None
            self.loss: float | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.progress = ProgressLog(
                logger, "training", state.max_steps, "steps", done=state.global_step
            )

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs = logs or {}
            if "loss" in logs:
                self.loss = float(logs["loss"])
            if "eval_loss" in logs:
                logger.info("step %d: eval_loss %.4f", state.global_step, logs["eval_loss"])

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.progress is not None:
                tokens = self.progress.rate(state.global_step) * tokens_per_step
                loss = "" if self.loss is None else f"loss {self.loss:.4f}, "
                self.progress.update(state.global_step, f"{loss}{tokens:.0f} tokens/s")

    return LogProgress()


def close_tensorboard(trainer: Any) -> None:
    """Flush and close TensorBoard writers (evaluate() after train() reopens one)."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
            callback.tb_writer.close()
            callback.tb_writer = None
