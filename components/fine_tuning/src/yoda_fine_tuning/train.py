"""LoRA fine-tuning with trl's ``SFTTrainer``: QLoRA on a 4-bit base where CUDA exists.

The adapter (never merged into a 4-bit base), the tokenizer and the hyper-parameters go to the
Model artifact; TensorBoard event files and a ``metrics.json`` go under the Metrics artifact.
What the run does on this machine is planned and told to peft and trl in configs.py, loaded in
loading.py, watched by the callbacks of callbacks.py, and written by outputs.py.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoda_fine_tuning import callbacks, configs
from yoda_fine_tuning.checkpoints import (
    checkpoint_folder_for,
    claim_checkpoint_folder,
    last_complete_checkpoint,
    release_checkpoint_folder,
    weights_only_resume,
)
from yoda_fine_tuning.distributed import SINGLE, Ranks, join_ranks
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.loading import (
    check_only_lora_trainable,
    count_parameters,
    load_model,
    private_datasets_cache,
    split_validation,
)
from yoda_fine_tuning.outputs import model_metadata, run_metrics, save_adapter, write_records
from yoda_fine_tuning.validation import answer_loss, mean_tokens
from yoda_step_io import StepError, local_inputs, outputs_in_place, timed, timing
from yoda_step_io.conversations import read_conversations
from yoda_step_io.libraries import device_support, quiet_progress_bars, skip_bitsandbytes
from yoda_step_io.models import check_local_model, model_revision, resolve_model

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FineTuneResult:
    """Scalar metrics (Metrics artifact), model metadata, and the trained model in memory."""

    metrics: dict[str, float]
    model_metadata: dict[str, Any]
    model: Any


def fine_tune(
    train_path: Path,
    model_output: Path,
    metrics_output: Path,
    *,
    base_model: str,
    hp: HyperParameters,
    checkpoint_dir: Path | None = None,
    ranks: Ranks = SINGLE,
) -> FineTuneResult:
    """Train a LoRA adapter on ``train_path``; write the Model and Metrics outputs or neither.

    One of several ``ranks`` (:mod:`.distributed`) trains alike, and only rank 0 writes.
    """
    hp.validate()  # before importing torch and friends: a bad value fails in a blink
    plan, quiet = _set_up(hp)
    join_ranks(ranks, plan.use_cuda)
    _check_gpus(plan, ranks)
    source = resolve_model(base_model)  # gs:// -> the /gcs mount or a local copy
    check_local_model(source)
    datasets = split_validation(read_conversations(train_path), hp)
    logger.info(
        "training on %d conversations, validating on %d; hyper-parameters: %s",
        len(datasets["train"]), len(datasets["validation"]), hp.as_dict(),
    )  # fmt: skip
    with timed("loading the base model"):
        model, tokenizer, hp = load_model(source, hp, plan, device=ranks.local_rank)
    revision = _base_revision(base_model, model)
    timing.mark("load")
    parameters = _check_parameters(model)
    sources = local_inputs(train_path, base_model)
    outputs = (model_output, metrics_output)
    checkpoints = checkpoint_folder_for(model_output, checkpoint_dir)
    writes = outputs_in_place(*outputs, inputs=sources) if ranks.main else nullcontext()
    with writes, private_datasets_cache():
        if ranks.main:
            claim_checkpoint_folder(checkpoints, (*outputs, *sources))
            metrics_output.mkdir()
        trainer = _make_trainer(model, tokenizer, datasets, hp, plan, checkpoints,
                                metrics_output / "tensorboard", ranks, quiet=quiet)  # fmt: skip
        train_output, losses = _train(trainer, checkpoints)
        validation = list(datasets["validation"])
        losses["validation_answer_loss"] = answer_loss(trainer.model, tokenizer, validation)
        rows = float(hp.max_seq_length) if hp.packing else mean_tokens(tokenizer, validation)
        metrics = run_metrics(losses, train_output, datasets, parameters, plan, hp, rows,
                              ranks.size)  # fmt: skip
        _check_converging(trainer.state.log_history, losses, hp, checkpoints, ranks)
        metadata = model_metadata(hp, base_model, plan, revision)
        if ranks.main:
            save_adapter(trainer.model, tokenizer, base_model, model_output)
            write_records(model_output, metrics_output, metadata, metrics,
                          trainer.state.log_history)  # fmt: skip
    if ranks.main:
        release_checkpoint_folder(checkpoints)  # the run finished: nothing left to resume
    logger.info("saved the LoRA adapter to %s, metrics to %s", model_output, metrics_output)
    return FineTuneResult(metrics=metrics, model_metadata=metadata, model=trainer.model)


def _set_up(hp: HyperParameters) -> tuple[configs.RunPlan, bool]:
    """Plan for this machine, import the libraries as the plan needs them (no bitsandbytes where
    nothing uses it, no redrawn bars in a log), and seed; returns the plan and whether the bars
    are off."""
    plan = configs.plan_run(hp, *device_support())  # imports torch
    if not plan.needs_bitsandbytes:
        skip_bitsandbytes()
    quiet = quiet_progress_bars()

    from transformers import set_seed
    from trl import SFTTrainer  # noqa: F401  (timed with the imports, and before the seeding)

    timing.mark("imports")
    # The LoRA weights' initialisation and trl's packing shuffle draw from the global RNGs before
    # the Trainer seeds them: seed them first, or no two runs are alike.
    set_seed(hp.training_seed)
    return plan, quiet


def _check_gpus(plan: configs.RunPlan, ranks: Ranks) -> None:
    """Say so where GPUs would sit idle: the task got more than it has ranks for."""
    import torch

    gpus = torch.cuda.device_count() if plan.use_cuda else 0
    if ranks.main and gpus > ranks.size:
        logger.warning(
            "%d GPUs here, training on %d: set accelerator_count to %d to use them all, or "
            "compile for fewer GPUs", gpus, ranks.size, gpus,
        )  # fmt: skip


def _base_revision(base_model: str, model: Any) -> str:
    """What the adapter is trained on, exactly: the hub's commit, or a content hash of the
    folder."""
    revision = model_revision(base_model, getattr(model.config, "_commit_hash", None))
    logger.info("base model %s at revision %s", base_model, revision)
    return revision


def _check_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters, once only the LoRA ones are known to be trainable."""
    check_only_lora_trainable(model)
    trainable, total = count_parameters(model)
    logger.info(
        "trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total
    )
    return trainable, total


def _make_trainer(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    datasets: dict[str, Dataset],
    hp: HyperParameters,
    plan: configs.RunPlan,
    checkpoints: Path,
    logging_dir: Path,
    ranks: Ranks,
    *,
    quiet: bool,
) -> Any:
    """The SFTTrainer, stopping at a non-finite loss; in a log (``quiet``), with progress lines
    instead of a bar and printed dicts.

    Raises:
        StepError: too little text to fill one packed sequence.
    """
    from transformers import PrinterCallback
    from trl import SFTTrainer

    try:
        trainer = SFTTrainer(
            model=model,
            args=configs.build_sft_config(
                hp, plan, checkpoints, logging_dir, ranks.size, progress_bar=not quiet
            ),
            train_dataset=datasets["train"],
            eval_dataset=datasets["validation"],
            processing_class=tokenizer,
            formatting_func=configs.chat_formatter(tokenizer),
            data_collator=configs.build_data_collator(hp, tokenizer),
        )
    except ValueError as error:
        if "packed sequence" not in str(error):
            raise
        raise callbacks.RecipeError(
            f"too little text to pack into sequences of {hp.max_seq_length} tokens: "
            "use more rows, a larger validation_fraction, or --packing false"
        ) from error
    trainer.add_callback(callbacks.stop_on_non_finite())
    if quiet:
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(callbacks.progress_callback(hp.tokens_per_step() * ranks.size))
    return trainer


def _train(trainer: Any, checkpoints: Path) -> tuple[Any, dict[str, float]]:
    """Train (on from the last complete checkpoint, if any), then validate; the train output
    and the final losses."""
    resume = last_complete_checkpoint(checkpoints, trainer.args.world_size)
    if resume:
        logger.info("resuming from checkpoint %s", resume)
    with timed("training"), weights_only_resume():
        train_output = trainer.train(resume_from_checkpoint=resume)
    eval_metrics = trainer.evaluate()
    callbacks.close_tensorboard(trainer)
    losses = {
        "train_loss": float(train_output.training_loss),
        "eval_loss": float(eval_metrics["eval_loss"]),
    }
    return train_output, losses


def _check_converging(
    history: list[dict[str, Any]],
    losses: dict[str, float],
    hp: HyperParameters,
    checkpoints: Path,
    ranks: Ranks,
) -> None:
    """:func:`.callbacks.check_converging`, dropping the checkpoints of a diverged run. Every
    rank sees the same losses (the Trainer logs their mean), so every rank stops with the same
    line."""
    try:
        callbacks.check_converging(history, losses, hp)
    except StepError:
        if ranks.main:
            release_checkpoint_folder(checkpoints)  # nothing worth resuming from
        raise
