"""The Trainer's progress as log lines (one every few percent, with loss, tokens/s and ETA), and
its TensorBoard writers closed at the end."""

from __future__ import annotations

import logging
from typing import Any

from yoda_step_io.progress import ProgressLog

logger = logging.getLogger("yoda_fine_tuning.train")


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
