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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from yoda_step_io import Metadata, Step, StepError, add_executor_input_flag, step_parser
from yoda_step_io.contract import DECISION_FILE, read_metrics
from yoda_step_io.files import outputs_in_place
from yoda_step_io.scores import METRIC_NAMES, metric_names
from yoda_step_io.values import add_field_flags, from_args, number, one_of, value

logger = logging.getLogger(__name__)


MARGIN = number(ge=-1.0, le=1.0)


@dataclass(frozen=True)
class Thresholds:
    """The gate's bar: margins over the baselines and a floor, on one metric's mean. Each field
    is a flag of ``yoda-gate``."""

    metric: str = value("rouge_l", one_of(*METRIC_NAMES), "the metric the gate decides on")
    min_uplift_vs_base: float = value(0.05, MARGIN, "margin over the base model")
    min_uplift_vs_echo: float = value(0.05, MARGIN, "margin over the echo baseline")
    min_score: float = value(0.5, number(ge=0.0, le=1.0), "the floor of the fine-tuned mean")


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
    parser.add_argument("--evaluation-metrics", type=Path, required=True, help="metrics folder")
    add_field_flags(parser, Thresholds)
    parser.add_argument("--decision-output", type=Path, required=True, help="Metrics folder")
    parser.add_argument("--passed-output", type=Path, required=True, help="file: true or false")
    add_executor_input_flag(parser)
    return parser


def body(args: argparse.Namespace) -> Metadata:
    """Decide and write the decision and ``passed``; the decision as metadata."""
    thresholds = from_args(Thresholds, args)
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


STEP = Step(
    build_parser,
    body,
    outputs=("decision_output", "passed_output"),
    inputs=("evaluation_metrics",),
)
main = STEP.main

if __name__ == "__main__":
    main()
