"""One recipe's run: its hyper-parameters (the flags, then the recipe's over them), trained in
this process or on ranks of it (:mod:`.distributed`), and its outcome for a sweep's champion.

:func:`run` is what ``yoda-fine-tuning`` does once its flags are parsed and checked (``cli.py``);
the run itself, top to bottom, is :func:`yoda_fine_tuning.train.fine_tune`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from yoda_fine_tuning import distributed
from yoda_fine_tuning.callbacks import RecipeError
from yoda_fine_tuning.configs import plan_run
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune
from yoda_step_io import BadValueError, Metadata
from yoda_step_io.files import local_inputs, outputs_in_place, write_text_atomic
from yoda_step_io.values import Allowed, from_args, json_object

logger = logging.getLogger(__name__)


def _recipe_problem(recipe: dict[str, Any]) -> str | None:
    names = [field.name for field in dataclasses.fields(HyperParameters)]
    unknown = sorted(set(recipe) - set(names))
    if unknown:
        return f"{', '.join(unknown)}: not a hyper-parameter of fine-tuning ({', '.join(names)})"
    return None


#: ``--recipe``: hyper-parameters by their names, over the flags.
RECIPE = Allowed(dict, "a JSON object of hyper-parameters and their values", rule=_recipe_problem,
                 convert=json_object)  # fmt: skip
#: What a finished recipe's outcome says of its metrics.
OUTCOME_METRICS = ("validation_answer_loss", "eval_loss", "train_loss", "train_steps",
                   "tokens_per_second")  # fmt: skip


def hyperparameters(args: argparse.Namespace) -> HyperParameters:
    """The flags' hyper-parameters with the recipe's on top (each as its flag takes it).

    Raises:
        BadValueError: a recipe value that its hyper-parameter does not allow (``--recipe``).
    """
    hp = from_args(HyperParameters, args)
    fields = {field.name: field for field in dataclasses.fields(HyperParameters)}
    changes = {}
    for name, given in args.recipe.items():
        allowed = fields[name].metadata["allowed"]
        try:
            value = allowed(given) if isinstance(given, str) and allowed.kind is not str else given
        except argparse.ArgumentTypeError as error:
            raise BadValueError("--recipe", json.dumps(args.recipe), f"{name}: {error}") from None
        if allowed.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        problem = allowed.problem(value)
        if problem:
            raise BadValueError("--recipe", json.dumps(args.recipe), f"{name}: {problem}")
        changes[name] = value
    merged: HyperParameters = dataclasses.replace(hp, **changes)
    return merged


@contextmanager
def named_by_recipe(recipe: dict[str, Any]) -> Iterator[None]:
    """A value the recipe gave is refused under ``--recipe``, naming the recipe, not the flag."""
    try:
        yield
    except BadValueError as error:
        name = error.flag.removeprefix("--").replace("-", "_")
        if name not in recipe:
            raise
        raise BadValueError("--recipe", json.dumps(recipe), f"{name}: {error.problem}") from None


def run(args: argparse.Namespace, argv: Sequence[str], checkpoints: Path | None) -> Metadata:
    """Train the recipe; with ``--outcome-output`` (a sweep's), say how it went there, and a
    recipe that failed (:class:`RecipeError`) ends the step well, marked failed."""
    launcher = distributed.this_process().exchange is None  # not one of the ranks
    try:
        metadata = train_recipe(args, argv, checkpoints)
    except Exception as error:
        if args.outcome_output is None or not launcher or not recipe_failed(error):
            raise
        logger.warning("this recipe failed: %s", error)
        outcome = {
            "recipe": args.recipe,
            "status": "failed",
            "reason": " ".join(str(error).split()),
        }
        write_text_atomic(args.outcome_output, json.dumps(outcome))
        return {"model": {"recipe_failed": outcome["reason"]}}
    if args.outcome_output is not None and launcher:
        write_text_atomic(args.outcome_output, json.dumps(finished(args, metadata["metrics"])))
    return metadata


def recipe_failed(error: BaseException) -> bool:
    """A failure of the recipe, not of the run: it diverged, made no training sequence, or ran
    out of GPU memory (its batch)."""
    return isinstance(error, RecipeError) or type(error).__name__ == "OutOfMemoryError"


def finished(args: argparse.Namespace, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A finished recipe's outcome: its losses, its speed and where its outputs are."""
    return {
        "recipe": args.recipe,
        "status": "finished",
        **{key: metrics.get(key) for key in OUTCOME_METRICS},
        "minutes": metrics["train_runtime_s"] / 60,
        "model_uri": args.model_uri or str(args.model_output),
        "metrics_uri": args.metrics_uri or str(args.metrics_output),
    }


def train_recipe(
    args: argparse.Namespace, argv: Sequence[str], checkpoints: Path | None
) -> Metadata:
    """Train, in this process or (``--accelerator-count`` > 1) on ranks of it; the metrics and
    the model's metadata."""
    hp = hyperparameters(args)
    ranks = distributed.this_process()
    if args.accelerator_count > 1 and ranks.exchange is None:
        return launch_ranks(args, argv, hp)
    if ranks.exchange is not None:
        distributed.die_with_launcher()
    if not ranks.main:
        logging.getLogger().setLevel(logging.WARNING)  # rank 0 tells the story; others warn
    try:
        result = fine_tune(
            args.train_dataset,
            args.model_output,
            args.metrics_output,
            base_model=args.base_model,
            hp=hp,
            checkpoint_dir=checkpoints,
            ranks=ranks,
        )
    except Exception as error:
        distributed.report_error(ranks, error)
        raise
    metadata = {"model": result.model_metadata, "metrics": result.metrics}
    distributed.report_result(ranks, metadata)
    return metadata


def launch_ranks(args: argparse.Namespace, argv: Sequence[str], hp: HyperParameters) -> Metadata:
    """Check what only torch can tell (the GPUs, bfloat16), then run the ranks; the outputs are
    this process's: marked here, written by rank 0, removed here if any rank fails."""
    from yoda_step_io.libraries import device_support
    from yoda_step_io.models import resolve_model

    cuda, bf16 = device_support()
    plan_run(hp, cuda, bf16)
    count = args.accelerator_count
    distributed.check_gpus(count, torch_cuda_devices() if cuda else 0)
    logger.info(
        "data-parallel on %d ranks: an effective batch of %d x %d = %d sequences of %d tokens "
        "per optimizer step, the learning rate kept at %g%s", count,
        hp.per_device_train_batch_size, count, hp.per_device_train_batch_size * count,
        hp.max_seq_length, hp.learning_rate,
        "; auto_find_batch_size off (the ranks would shrink their batches apart)"
        if hp.auto_find_batch_size else "",
    )  # fmt: skip
    outputs, sources = (
        (args.model_output, args.metrics_output),
        local_inputs(args.train_dataset, args.base_model),
    )
    resolve_model(args.base_model)  # a gs:// base downloaded once here, not by every rank at once
    with outputs_in_place(*outputs, inputs=sources), tempfile.TemporaryDirectory() as exchange:
        return distributed.launch(argv, count, Path(exchange), cuda=cuda)


def torch_cuda_devices() -> int:
    import torch

    return int(torch.cuda.device_count())
