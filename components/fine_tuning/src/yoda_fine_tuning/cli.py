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
import sys
import tempfile
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from yoda_fine_tuning import distributed
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune
from yoda_step_io import Metadata, StepError, add_executor_input_flag, run_cli, step_parser
from yoda_step_io.cli import parse_bool
from yoda_step_io.files import local_inputs, outputs_in_place
from yoda_step_io.gcs import split_gs_uri
from yoda_step_io.models import gcs_mount_path

DEFAULT_BASE_MODEL = "microsoft/Phi-3-mini-4k-instruct"
logger = logging.getLogger(__name__)


def checkpoint_folder(text: str) -> Path | None:
    """``--checkpoint-dir``: empty (beside the Model output), a local folder, or ``gs://…``
    written through Vertex AI's ``/gcs`` mount.

    Raises:
        StepError: ``gs://`` where no mount of that bucket exists, or another URI scheme.
    """
    text = text.strip()
    if not text:
        return None
    if text.startswith("gs://"):
        bucket = gcs_mount_path(f"gs://{split_gs_uri(text)[0]}")  # /gcs/BUCKET
        if not bucket.is_dir():
            raise StepError(
                f"--checkpoint-dir {text}: gs:// checkpoints are written through Vertex AI's "
                f"Cloud Storage mount ({bucket}), which this machine lacks: give a local folder"
            )
        return gcs_mount_path(text)
    if "://" in text:
        raise StepError(
            f"--checkpoint-dir {text}: a local folder or gs://… only (other storage is not mounted)"
        )
    return Path(text)


def parse_modules(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _flag_type(annotation: Any) -> Callable[[str], Any]:
    if annotation is bool:
        return parse_bool
    if annotation in (int, float):
        return typing.cast(Callable[[str], Any], annotation)
    if typing.get_origin(annotation) is tuple:
        return parse_modules
    return str


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-fine-tuning", __doc__)
    parser.add_argument("--train-dataset", type=Path, required=True, help="train JSONL (messages)")
    parser.add_argument("--model-output", type=Path, required=True, help="adapter directory")
    parser.add_argument("--metrics-output", type=Path, required=True, help="metrics directory")
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL, help="hub id or local dir")
    parser.add_argument(
        "--checkpoint-dir",
        default="",
        help="where checkpoints go (a rerun resumes from them); empty: beside --model-output",
    )
    parser.add_argument(
        "--accelerator-count",
        type=int,
        default=1,
        help="data-parallel ranks, one per GPU (on a CPU: gloo processes); default: 1",
    )
    hints = typing.get_type_hints(HyperParameters)
    for field in dataclasses.fields(HyperParameters):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=_flag_type(hints[field.name]),
            default=field.default,
            help=f"default: {field.default}",
        )
    add_executor_input_flag(parser)
    return parser


def hyperparameters_from_args(args: argparse.Namespace) -> HyperParameters:
    fields = dataclasses.fields(HyperParameters)
    return HyperParameters(**{field.name: getattr(args, field.name) for field in fields})


def step(args: argparse.Namespace, argv: Sequence[str]) -> Metadata:
    """Train, in this process or (``--accelerator-count`` > 1) on ranks of it; the metrics and
    the model's metadata."""
    checkpoints = checkpoint_folder(args.checkpoint_dir)
    hp = hyperparameters_from_args(args)
    ranks = distributed.this_process()
    distributed.check_count(args.accelerator_count, cuda_devices=0)  # the GPUs: when launching
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
    """Check what one process would before any work, then run the ranks; the outputs are this
    process's: marked here, written by rank 0, removed here if any rank fails."""
    from yoda_fine_tuning.plan import plan_run
    from yoda_step_io.libraries import device_support
    from yoda_step_io.models import resolve_model

    hp.validate()
    cuda, bf16 = device_support()
    plan_run(hp, cuda, bf16)  # 4-bit or an 8-bit optimizer without CUDA: refused here
    gpus = torch_cuda_devices() if cuda else 0
    count = args.accelerator_count
    distributed.check_count(count, gpus)
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


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, train, report metrics and model metadata to KFP."""
    given = list(sys.argv[1:] if argv is None else argv)
    outputs, inputs = ("model_output", "metrics_output"), ("train_dataset", "base_model")
    run_cli(build_parser(), given, lambda args: step(args, given), outputs=outputs, inputs=inputs)


if __name__ == "__main__":
    main()
