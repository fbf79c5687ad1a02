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
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from yoda_fine_tuning.architecture import check_target_names
from yoda_fine_tuning.checkpoints import checkpoint_folder_for
from yoda_fine_tuning.configs import plan_run
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.run import RECIPE, hyperparameters, named_by_recipe, run
from yoda_step_io import (
    BadValueError,
    Metadata,
    Step,
    StepError,
    add_executor_input_flag,
    step_parser,
)
from yoda_step_io.files import check_location
from yoda_step_io.gcs import GS_URI, split_gs_uri
from yoda_step_io.libraries import cuda_here
from yoda_step_io.models import BASE_MODEL, check_local_model, gcs_mount_path
from yoda_step_io.values import add_field_flags, integer, text

DEFAULT_BASE_MODEL = "microsoft/Phi-3-mini-4k-instruct"


def _checkpoint_problem(value: str) -> str | None:
    if "://" not in value:
        return None
    if not value.startswith("gs://"):
        return f"unsupported scheme {value.split('://')[0]}://: expected a local path or gs://"
    return None if GS_URI.match(value) else "expected gs://BUCKET or gs://BUCKET/PATH"


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
    with named_by_recipe(args.recipe):
        hp.validate()
        check_target_names(hp.lora_target_modules, args.base_model, here)
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
    with named_by_recipe(args.recipe):
        plan_run(hp, cuda_here(), bf16_supported=True)  # bfloat16: known once torch loads


def body(args: argparse.Namespace, argv: Sequence[str]) -> Metadata:
    """Train the recipe (:func:`yoda_fine_tuning.run.run`)."""
    return run(args, argv, checkpoint_folder(args.checkpoint_dir))


STEP = Step(
    build_parser,
    lambda args: body(args, sys.argv[1:]),
    check,
    outputs=("model_output", "metrics_output", "outcome_output"),
    inputs=("train_dataset", "base_model"),
)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse and check the flags, train, report metrics and model metadata to KFP."""
    given = list(sys.argv[1:] if argv is None else argv)
    dataclasses.replace(STEP, body=lambda args: body(args, given)).main(given)


if __name__ == "__main__":
    main()
