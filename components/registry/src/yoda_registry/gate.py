"""``yoda-gate``: does the fine-tuned model earn a place in the Model Registry?

It must beat the base model and the echo baseline (answering with the user's own sentence) on the
gate's metric by at least a margin each, and reach a floor. A baseline that was not scored (the
base model's answers turned off) is not compared, and the decision says so. The decision and its
reasons go to the log and to the ``decision`` Metrics artifact (Vertex shows them); ``passed`` is
the pipeline's ``dsl.If`` condition. By hand::

    yoda-gate --evaluation-metrics metrics --decision-output decision --passed-output passed
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from yoda_step_io import Metadata, StepError, add_executor_input_flag, run_cli, step_parser
from yoda_step_io.contract import DECISION_FILE, read_metrics
from yoda_step_io.files import outputs_in_place
from yoda_step_io.scores import metric_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    """The gate's bar: margins over the baselines and a floor, on one metric's mean."""

    metric: str = "rouge_l"
    min_uplift_vs_base: float = 0.05
    min_uplift_vs_echo: float = 0.05
    min_score: float = 0.5


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: list[str]
    score: float

    def metadata(self, thresholds: Thresholds) -> dict[str, float | str | bool]:
        return {
            "passed": self.passed,
            "reasons": "; ".join(self.reasons),
            "metric": thresholds.metric,
            f"{thresholds.metric}_mean": self.score,
            "min_uplift_vs_base": thresholds.min_uplift_vs_base,
            "min_uplift_vs_echo": thresholds.min_uplift_vs_echo,
            "min_score": thresholds.min_score,
        }


def decide(aggregates: Mapping[str, float], thresholds: Thresholds) -> Decision:
    """Check the fine-tuned mean against the floor and each scored baseline.

    Raises:
        StepError: the evaluation did not score the gate's metric.
    """
    name = thresholds.metric
    if f"{name}_mean" not in aggregates:
        scored = sorted(metric_names(aggregates))
        raise StepError(f"the evaluation has no {name}_mean: gate on one of {', '.join(scored)}")
    score = float(aggregates[f"{name}_mean"])
    reasons, passed = [], True
    ok = score >= thresholds.min_score
    passed &= ok
    sign = ">=" if ok else "<"
    reasons.append(f"{name} {score:.3f} {sign} floor {thresholds.min_score:.3f}")
    for baseline, margin in (("base", thresholds.min_uplift_vs_base),
                             ("echo", thresholds.min_uplift_vs_echo)):  # fmt: skip
        uplift = aggregates.get(f"{name}_uplift_vs_{baseline}")
        if uplift is None:
            reasons.append(f"no {baseline} baseline scored: not compared")
            continue
        ok = uplift >= margin
        passed &= ok
        sign = ">=" if ok else "<"
        reasons.append(f"uplift vs {baseline} {uplift:+.3f} {sign} margin {margin:+.3f}")
    return Decision(passed, reasons, score)


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-gate", __doc__)
    defaults = Thresholds()
    parser.add_argument("--evaluation-metrics", type=Path, required=True, help="metrics folder")
    parser.add_argument("--metric", default=defaults.metric)
    parser.add_argument("--min-uplift-vs-base", type=float, default=defaults.min_uplift_vs_base)
    parser.add_argument("--min-uplift-vs-echo", type=float, default=defaults.min_uplift_vs_echo)
    parser.add_argument("--min-score", type=float, default=defaults.min_score)
    parser.add_argument("--decision-output", type=Path, required=True, help="Metrics folder")
    parser.add_argument("--passed-output", type=Path, required=True, help="file: true or false")
    add_executor_input_flag(parser)
    return parser


def step(args: argparse.Namespace) -> Metadata:
    """Decide and write the decision and ``passed``; the decision as metadata."""
    thresholds = Thresholds(args.metric, args.min_uplift_vs_base, args.min_uplift_vs_echo,
                            args.min_score)  # fmt: skip
    aggregates = read_metrics(args.evaluation_metrics)
    decision = decide(aggregates, thresholds)
    verdict = "passed: registering the model" if decision.passed else "not passed: no registration"
    logger.info("quality gate %s (%s)", verdict, "; ".join(decision.reasons))
    metadata = decision.metadata(thresholds)
    with outputs_in_place(args.decision_output, args.passed_output):
        args.decision_output.mkdir()
        (args.decision_output / DECISION_FILE).write_text(json.dumps(metadata, indent=2))
        args.passed_output.write_text(json.dumps(decision.passed))
    return {"decision": metadata}


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, decide, write the decision (Metrics) and the ``passed`` output."""
    outputs = ("decision_output", "passed_output")
    run_cli(build_parser(), argv, step, outputs=outputs, inputs=("evaluation_metrics",))


if __name__ == "__main__":
    main()
