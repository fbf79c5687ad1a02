"""``yoda-evaluation``: the evaluation step's console script (its image's command).

By hand::

    yoda-evaluation --predictions predictions.csv --results-output results.csv \
        --metrics-output metrics --metrics rouge_l,bleu
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from yoda_evaluation.evaluate import evaluate_predictions
from yoda_evaluation.metrics import METRICS, parse_metric_names
from yoda_step_io import (
    add_executor_input_flag,
    check_outputs,
    load_executor_input,
    local_inputs,
    run_step,
    setup_logging,
    write_executor_output,
)
from yoda_step_io.executor import input_metadata


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yoda-evaluation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--predictions", type=Path, required=True, help="predictions CSV")
    parser.add_argument(
        "--base-predictions",
        type=Path,
        help="the base model's predictions CSV (same sentences; header only: no base row)",
    )
    parser.add_argument("--results-output", type=Path, required=True, help="per-sample CSV")
    parser.add_argument("--metrics-output", type=Path, required=True, help="metrics folder")
    parser.add_argument(
        "--metrics",
        default="",
        help=f"comma-separated, among: {', '.join(METRICS)} (default: all)",
    )
    add_executor_input_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, score the predictions, report the aggregates to KFP."""
    args = build_parser().parse_args(argv)
    setup_logging()

    def step() -> None:
        executor_input = load_executor_input(args.executor_input)
        check_outputs(
            args.results_output,
            args.metrics_output,
            inputs=local_inputs(args.predictions, args.base_predictions),
        )
        names = parse_metric_names(args.metrics)
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
        write_executor_output(
            executor_input,
            {
                "metrics": result.aggregates,
                "evaluation_results": {
                    "rows": result.aggregates["samples"],
                    "metrics": ",".join(names),
                    "seconds_per_sample": result.seconds_per_sample,
                },
            },
        )

    run_step(step)


if __name__ == "__main__":
    main()
