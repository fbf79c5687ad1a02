"""``yoda-data-transformation``: the data step's console script (its image's command).

By hand::

    yoda-data-transformation --raw-data-uri data.csv --train-output train.jsonl \
        --test-output test.jsonl --target-column translation --test-fraction 0.2
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from yoda_data_transformation.transform import TARGET_COLUMNS, transform
from yoda_step_io import Metadata, add_executor_input_flag, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yoda-data-transformation", description=__doc__)
    parser.add_argument("--raw-data-uri", required=True, help="CSV: local path, gs:// or hf://")
    parser.add_argument("--train-output", type=Path, required=True, help="train JSONL path")
    parser.add_argument("--test-output", type=Path, required=True, help="test JSONL path")
    columns = ", ".join(TARGET_COLUMNS)
    parser.add_argument(
        "--target-column",
        default="translation_extra",
        help=f"assistant answer column, one of: {columns}",
    )
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of rows for test")
    parser.add_argument("--seed", type=int, default=42, help="seed of the train/test shuffle")
    add_executor_input_flag(parser)
    return parser


def step(args: argparse.Namespace) -> Metadata:
    """Split the data; the artifacts' metadata."""
    result = transform(
        args.raw_data_uri,
        args.train_output,
        args.test_output,
        target_column=args.target_column,
        test_fraction=args.test_fraction,
        seed=args.seed,
    )
    return {"train": result.metadata("train"), "test": result.metadata("test")}


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, run :func:`transform`, report artifact metadata to KFP."""
    outputs = ("train_output", "test_output")
    run_cli(build_parser(), argv, step, outputs=outputs, inputs=("raw_data_uri",))


if __name__ == "__main__":
    main()
