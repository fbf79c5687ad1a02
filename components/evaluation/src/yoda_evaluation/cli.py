"""``yoda-evaluation``: the evaluation step's console script (its image's command).

By hand::

    yoda-evaluation --predictions predictions.csv --results-output results.csv \
        --metrics-output metrics --metrics rouge_l,bleu
"""

from __future__ import annotations

import argparse
from pathlib import Path

from yoda_evaluation.evaluate import evaluate_predictions
from yoda_evaluation.metrics import METRIC_LIST
from yoda_step_io import Metadata, Step, add_executor_input_flag, step_parser
from yoda_step_io.executor import input_metadata, load_executor_input
from yoda_step_io.scores import METRIC_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-evaluation", __doc__)
    parser.add_argument("--predictions", type=Path, required=True, help="predictions CSV")
    parser.add_argument(
        "--base-predictions",
        type=Path,
        help="the base model's predictions CSV (same sentences; header only: no base row)",
    )
    parser.add_argument("--results-output", type=Path, required=True, help="per-sample CSV")
    parser.add_argument("--metrics-output", type=Path, required=True, help="metrics folder")
    parser.add_argument("--metrics", type=METRIC_LIST, default="", help=METRIC_LIST.words)
    add_executor_input_flag(parser)
    return parser


def body(args: argparse.Namespace) -> Metadata:
    """Score the predictions; the aggregates and the results' metadata."""
    names = args.metrics or METRIC_NAMES
    executor_input = load_executor_input(args.executor_input)  # for the upstream metadata
    upstream = {
        f"{prefix}cut_answers": float(metadata["cut_answers"])
        for prefix, name in (("", "predictions"), ("base_", "base_predictions"))
        if "cut_answers" in (metadata := input_metadata(executor_input, name))
    }
    result = evaluate_predictions(
        args.predictions,
        args.results_output,
        args.metrics_output,
        names,
        base_predictions_path=args.base_predictions,
        upstream=upstream,
    )
    return {
        "metrics": result.aggregates,
        "evaluation_results": {
            "rows": result.aggregates["samples"],
            "metrics": ",".join(names),
            "seconds_per_sample": result.seconds_per_sample,
        },
    }


STEP = Step(
    build_parser,
    body,
    outputs=("results_output", "metrics_output"),
    inputs=("predictions", "base_predictions"),
)
main = STEP.main

if __name__ == "__main__":
    main()
