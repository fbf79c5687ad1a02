"""``yoda-data-transformation``: the data step's console script (its image's command).

By hand::

    yoda-data-transformation --raw-data-uri data.csv --train-output train.jsonl \
        --test-output test.jsonl --target-column translation --test-fraction 0.2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from yoda_data_transformation.sources import RAW_DATA, check_local_source
from yoda_data_transformation.transform import TARGET_COLUMNS, transform
from yoda_step_io import Metadata, Step, add_executor_input_flag, step_parser
from yoda_step_io.values import SEED, number, one_of

TARGET_COLUMN = one_of(*TARGET_COLUMNS)
TEST_FRACTION = number(gt=0.0, lt=1.0)


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-data-transformation", __doc__)
    parser.add_argument("--raw-data-uri", type=RAW_DATA, required=True, help=RAW_DATA.words)
    parser.add_argument("--train-output", type=Path, required=True, help="train JSONL path")
    parser.add_argument("--test-output", type=Path, required=True, help="test JSONL path")
    parser.add_argument(
        "--target-column",
        type=TARGET_COLUMN,
        default="translation_extra",
        help=f"the assistant's answer column: {TARGET_COLUMN.words}",
    )
    parser.add_argument(
        "--test-fraction",
        type=TEST_FRACTION,
        default=0.1,
        help=f"share of rows for the test split: {TEST_FRACTION.words}; each split keeps a row",
    )
    parser.add_argument("--seed", type=SEED, default=42, help=f"shuffle seed: {SEED.words}")
    add_executor_input_flag(parser)
    return parser


def check(args: argparse.Namespace, here: bool) -> None:
    """On this machine, a local raw CSV must be there."""
    if here:
        check_local_source(args.raw_data_uri)


def body(args: argparse.Namespace) -> Metadata:
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


STEP = Step(
    build_parser, body, check, outputs=("train_output", "test_output"), inputs=("raw_data_uri",)
)
main = STEP.main

if __name__ == "__main__":
    main()
