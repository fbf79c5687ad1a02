"""``yoda-inference``: the inference step's console script (its image's command).

By hand, on a CPU::

    yoda-inference --model-dir out/model --test-dataset test.jsonl \
        --predictions-output predictions.csv --quantization auto --batch-size 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_step_io import Metadata, Step, add_executor_input_flag, step_parser
from yoda_step_io.libraries import COMPUTE_DTYPES, cuda_here
from yoda_step_io.models import BASE_MODEL
from yoda_step_io.quantization import QUANTIZATION, plan_quantization
from yoda_step_io.values import BOOLEAN, add_field_flags, from_args, one_of, text

#: Empty (by hand: the base the fine-tuning recorded) or the run's own base model.
RUN_BASE = text(
    f"empty (the base the fine-tuning recorded) or {BASE_MODEL.words}",
    lambda name: BASE_MODEL.problem(name) if name else None,
)


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-inference", __doc__)
    parser.add_argument("--model-dir", type=Path, required=True, help="LoRA adapter directory")
    parser.add_argument("--test-dataset", type=Path, required=True, help="test JSONL (messages)")
    parser.add_argument("--predictions-output", type=Path, required=True, help="CSV path")
    parser.add_argument(
        "--base-predictions-output",
        type=Path,
        help="CSV path for the base model's answers (the adapter switched off)",
    )
    parser.add_argument(
        "--with-base-model",
        type=BOOLEAN,
        default=True,
        help="answer with the base model too (default true; false: a header-only CSV)",
    )
    parser.add_argument(
        "--base-model",
        type=RUN_BASE,
        default="",
        help="the run's base model, which must be the one the adapter was trained on",
    )
    parser.add_argument(
        "--quantization", type=QUANTIZATION, default="4bit", help=QUANTIZATION.words
    )
    parser.add_argument("--compute-dtype", type=one_of(*COMPUTE_DTYPES), default="float16")
    parser.add_argument(
        "--merge-adapter",
        type=BOOLEAN,
        default=False,
        help="fold the adapter into a full-precision base for generation (not with 4-bit)",
    )
    add_field_flags(parser, GenerationParameters)
    add_executor_input_flag(parser)
    return parser


def check(args: argparse.Namespace, here: bool) -> None:
    """On this machine: 4-bit needs CUDA."""
    if here:
        plan_quantization(args.quantization, cuda_here())


def body(args: argparse.Namespace) -> Metadata:
    """Predict the test set; the predictions' metadata (throughput)."""
    result = predict_test_set(
        args.model_dir,
        args.test_dataset,
        args.predictions_output,
        params=from_args(GenerationParameters, args),
        base_predictions_path=args.base_predictions_output,
        with_base_model=args.with_base_model,
        base_model=args.base_model,
        quantization=args.quantization,
        compute_dtype=args.compute_dtype,
        merge=args.merge_adapter,
    )
    metadata = {"predictions": result.metadata}
    if args.base_predictions_output is not None:
        metadata["base_predictions"] = result.base_metadata
    return metadata


STEP = Step(
    build_parser,
    body,
    check,
    outputs=("predictions_output", "base_predictions_output"),
    inputs=("test_dataset", "model_dir", "base_model"),
)
main = STEP.main

if __name__ == "__main__":
    main()
