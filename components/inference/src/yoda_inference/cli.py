"""``yoda-inference``: the inference step's console script (its image's command).

By hand, on a CPU::

    yoda-inference --model-dir out/model --test-dataset test.jsonl \
        --predictions-output predictions.csv --quantization auto --batch-size 16
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_step_io import Metadata, add_executor_input_flag, parse_bool, run_cli, step_parser
from yoda_step_io.vocabulary import QUANTIZATION_MODES


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
        type=parse_bool,
        default=True,
        help="answer with the base model too (default true; false: a header-only CSV)",
    )
    parser.add_argument("--base-model", default="", help="default: the adapter config's base")
    parser.add_argument("--quantization", default="4bit", help=", ".join(QUANTIZATION_MODES))
    parser.add_argument("--compute-dtype", default="float16")
    parser.add_argument(
        "--merge-adapter",
        type=parse_bool,
        default=False,
        help="fold the adapter into a full-precision base for generation (not with 4-bit)",
    )
    defaults = GenerationParameters()
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--do-sample", type=parse_bool, default=defaults.do_sample)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--top-p", type=float, default=defaults.top_p)
    add_executor_input_flag(parser)
    return parser


def step(args: argparse.Namespace) -> Metadata:
    """Predict the test set; the predictions' metadata (throughput)."""
    params = GenerationParameters(
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_p=args.top_p,
    )
    result = predict_test_set(
        args.model_dir,
        args.test_dataset,
        args.predictions_output,
        params=params,
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


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, predict the test set, report throughput metadata to KFP."""
    outputs = ("predictions_output", "base_predictions_output")
    inputs = ("test_dataset", "model_dir", "base_model")
    run_cli(build_parser(), argv, step, outputs=outputs, inputs=inputs)


if __name__ == "__main__":
    main()
