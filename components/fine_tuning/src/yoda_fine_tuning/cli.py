"""``yoda-fine-tuning``: the fine-tuning step's console script (its image's command).

Every hyper-parameter of :class:`~yoda_fine_tuning.hyperparams.HyperParameters` is a flag
(``--lora-r 16``, ``--target-modules qkv_proj,o_proj``, ``--packing false``). By hand, on a CPU::

    yoda-fine-tuning --train-dataset train.jsonl --model-output out/model \
        --metrics-output out/metrics --base-model build/tiny-phi3 --quantization auto
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune
from yoda_step_io import Metadata, StepError, add_executor_input_flag, run_cli, step_parser
from yoda_step_io.cli import parse_bool
from yoda_step_io.gcs import split_gs_uri
from yoda_step_io.models import gcs_mount_path

DEFAULT_BASE_MODEL = "microsoft/Phi-3-mini-4k-instruct"


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


def step(args: argparse.Namespace) -> Metadata:
    """Train; the metrics and the model's metadata."""
    checkpoints = checkpoint_folder(args.checkpoint_dir)
    result = fine_tune(
        args.train_dataset,
        args.model_output,
        args.metrics_output,
        base_model=args.base_model,
        hp=hyperparameters_from_args(args),
        checkpoint_dir=checkpoints,
    )
    return {"model": result.model_metadata, "metrics": result.metrics}


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, train, report metrics and model metadata to KFP."""
    outputs, inputs = ("model_output", "metrics_output"), ("train_dataset", "base_model")
    run_cli(build_parser(), argv, step, outputs=outputs, inputs=inputs)


if __name__ == "__main__":
    main()
