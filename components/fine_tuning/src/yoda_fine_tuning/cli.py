"""``yoda-fine-tuning``: the fine-tuning step's console script (its image's command).

Every hyper-parameter of :class:`~yoda_fine_tuning.hyperparams.HyperParameters` is a flag
(``--lora-r 16``, ``--lora-target-modules qkv_proj,o_proj``, ``--packing false``). By hand, on
a CPU::

    yoda-fine-tuning --train-dataset train.jsonl --model-output out/model \
        --metrics-output out/metrics --base-model build/tiny-phi3 --quantization auto

``--accelerator-count 2`` trains on two data-parallel ranks (GPUs; on a CPU, gloo processes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from yoda_fine_tuning import distributed
from yoda_fine_tuning.architecture import check_target_names
from yoda_fine_tuning.checkpoints import checkpoint_folder_for
from yoda_fine_tuning.guards import RecipeError
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.plan import plan_run
from yoda_fine_tuning.train import fine_tune
from yoda_step_io import (
    BadValueError,
    Metadata,
    Step,
    StepError,
    add_executor_input_flag,
    step_parser,
)
from yoda_step_io.files import check_location, local_inputs, outputs_in_place, write_text_atomic
from yoda_step_io.gcs import GS_URI, split_gs_uri
from yoda_step_io.libraries import cuda_here
from yoda_step_io.models import BASE_MODEL, check_local_model, gcs_mount_path
from yoda_step_io.values import Allowed, add_field_flags, from_args, integer, json_object, text

DEFAULT_BASE_MODEL = "microsoft/Phi-3-mini-4k-instruct"
logger = logging.getLogger(__name__)


def _checkpoint_problem(value: str) -> str | None:
    if "://" not in value:
        return None
    if not value.startswith("gs://"):
        return f"unsupported scheme {value.split('://')[0]}://: expected a local path or gs://"
    return None if GS_URI.match(value) else "expected gs://BUCKET or gs://BUCKET/PATH"


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

CHECKPOINT_DIR = text("empty (beside the model), a local folder or gs://BUCKET/PATH",
                      _checkpoint_problem)  # fmt: skip
#: Data-parallel ranks: one machine's GPUs (Vertex AI offers up to 16 on one).
ACCELERATOR_COUNT = integer(1, 16)


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-fine-tuning", __doc__)
    parser.add_argument("--train-dataset", type=Path, required=True, help="train JSONL (messages)")
    parser.add_argument("--model-output", type=Path, required=True, help="adapter directory")
    parser.add_argument("--metrics-output", type=Path, required=True, help="metrics directory")
    parser.add_argument(
        "--base-model", type=BASE_MODEL, default=DEFAULT_BASE_MODEL, help=BASE_MODEL.words
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=CHECKPOINT_DIR,
        default="",
        help=f"where checkpoints go (a rerun resumes from them): {CHECKPOINT_DIR.words}",
    )
    parser.add_argument(
        "--accelerator-count",
        type=ACCELERATOR_COUNT,
        default=1,
        help=f"data-parallel ranks, one per GPU (on a CPU: processes, at most one per core): "
        f"{ACCELERATOR_COUNT.words}",
    )
    add_field_flags(parser, HyperParameters)
    parser.add_argument(
        "--recipe",
        type=RECIPE,
        default="{}",
        help=f"{RECIPE.words}, over the flags above: one recipe of a sweep (default: none)",
    )
    parser.add_argument(
        "--outcome-output",
        type=Path,
        help="file: the recipe's outcome as JSON (finished, with its losses and where its model "
        "is, or failed, with the reason); with it, a recipe that fails ends the step well",
    )
    parser.add_argument("--model-uri", default="", help="where --model-output is, for the outcome")
    parser.add_argument(
        "--metrics-uri", default="", help="where --metrics-output is, for the outcome"
    )
    add_executor_input_flag(parser)
    return parser


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


def checkpoint_folder(text: str) -> Path | None:
    """``--checkpoint-dir``: empty (beside the Model output), a local folder, or ``gs://…``
    written through Vertex AI's ``/gcs`` mount.

    Raises:
        BadValueError: ``gs://`` where no mount of that bucket exists.
    """
    if not text.strip():
        return None
    if text.startswith("gs://"):
        bucket = gcs_mount_path(f"gs://{split_gs_uri(text)[0]}")  # /gcs/BUCKET
        if not bucket.is_dir():
            raise BadValueError(
                "--checkpoint-dir", text, f"gs:// checkpoints are written through Vertex AI's "
                f"Cloud Storage mount ({bucket}), which this machine lacks: give a local folder "
                "or leave it empty",
            )  # fmt: skip
        return gcs_mount_path(text)
    return Path(text)


def check(args: argparse.Namespace, here: bool) -> None:
    """The hyper-parameters together, the LoRA targets against the base's architecture and, on
    this machine, the base folder, the checkpoint folder, the cores and CUDA (4-bit and the
    8-bit optimizers need it)."""
    hp = hyperparameters(args)
    try:
        hp.validate()
        check_target_names(hp.lora_target_modules, args.base_model, here)
        if here:
            plan_run(hp, cuda_here(), bf16_supported=True)  # bfloat16: known once torch loads
    except BadValueError as error:  # a recipe's value: the recipe is named, not the flag
        name = error.flag.removeprefix("--").replace("-", "_")
        if name not in args.recipe:
            raise
        problem = f"{name}: {error.problem}"
        raise BadValueError("--recipe", json.dumps(args.recipe), problem) from None
    if not here:
        return
    check_local_model(args.base_model)
    folder = checkpoint_folder(args.checkpoint_dir)
    if folder is not None:
        try:
            check_location(checkpoint_folder_for(args.model_output, folder))
        except StepError as error:
            raise BadValueError("--checkpoint-dir", args.checkpoint_dir, str(error)) from None
    cores = os.cpu_count() or 1
    if args.accelerator_count > cores:
        raise BadValueError(
            "--accelerator-count", args.accelerator_count,
            f"this machine has {cores} CPU core(s), and each rank is a process: at most {cores}",
        )  # fmt: skip


def train(args: argparse.Namespace, argv: Sequence[str]) -> Metadata:
    """Train the recipe; with ``--outcome-output`` (a sweep's), say how it went there, and a
    recipe that failed (:class:`RecipeError`) ends the step well, marked failed."""
    launcher = distributed.this_process().exchange is None  # not one of the ranks
    try:
        metadata = train_recipe(args, argv)
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


def train_recipe(args: argparse.Namespace, argv: Sequence[str]) -> Metadata:
    """Train, in this process or (``--accelerator-count`` > 1) on ranks of it; the metrics and
    the model's metadata."""
    checkpoints = checkpoint_folder(args.checkpoint_dir)
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


STEP = Step(
    build_parser,
    lambda args: train(args, sys.argv[1:]),
    check,
    outputs=("model_output", "metrics_output", "outcome_output"),
    inputs=("train_dataset", "base_model"),
)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse and check the flags, train, report metrics and model metadata to KFP."""
    given = list(sys.argv[1:] if argv is None else argv)
    dataclasses.replace(STEP, body=lambda args: train(args, given)).main(given)


if __name__ == "__main__":
    main()
