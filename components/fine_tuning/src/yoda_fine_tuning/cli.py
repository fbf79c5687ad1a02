"""``yoda-fine-tuning``: the fine-tuning step's console script (its image's command).

Every hyper-parameter of :class:`~yoda_fine_tuning.hyperparams.HyperParameters` is a flag
(``--lora-r 16``, ``--target-modules qkv_proj,o_proj``, ``--packing false``). By hand, on a CPU::

    yoda-fine-tuning --train-dataset train.jsonl --model-output out/model \
        --metrics-output out/metrics --base-model build/tiny-phi3 --quantization auto

``--accelerator-count 2`` trains on two data-parallel ranks (GPUs; on a CPU, gloo processes).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from yoda_fine_tuning import distributed
from yoda_fine_tuning.architecture import check_target_names
from yoda_fine_tuning.checkpoints import checkpoint_folder_for
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
from yoda_step_io.files import check_location, local_inputs, outputs_in_place
from yoda_step_io.gcs import GS_URI, split_gs_uri
from yoda_step_io.libraries import cuda_here
from yoda_step_io.models import BASE_MODEL, check_local_model, gcs_mount_path
from yoda_step_io.values import add_field_flags, from_args, integer, text

DEFAULT_BASE_MODEL = "microsoft/Phi-3-mini-4k-instruct"
logger = logging.getLogger(__name__)


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
    hp = from_args(HyperParameters, args)
    hp.validate()
    check_target_names(hp.target_modules, args.base_model, here)
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
    plan_run(hp, cuda_here(), bf16_supported=True)  # bfloat16 support: known once torch loads


def train(args: argparse.Namespace, argv: Sequence[str]) -> Metadata:
    """Train, in this process or (``--accelerator-count`` > 1) on ranks of it; the metrics and
    the model's metadata."""
    checkpoints = checkpoint_folder(args.checkpoint_dir)
    hp = from_args(HyperParameters, args)
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
    outputs=("model_output", "metrics_output"),
    inputs=("train_dataset", "base_model"),
)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse and check the flags, train, report metrics and model metadata to KFP."""
    given = list(sys.argv[1:] if argv is None else argv)
    dataclasses.replace(STEP, body=lambda args: train(args, given)).main(given)


if __name__ == "__main__":
    main()
