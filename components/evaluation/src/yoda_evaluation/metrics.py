"""ragas metrics, offline and without an LLM: definitions, per-sample scores, aggregates.

Every metric here is a ragas ``SingleTurnMetric`` that needs no API key: ROUGE (rouge-score),
BLEU (sacrebleu), string similarities (rapidfuzz), exact match and string presence.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from yoda_step_io import BadValueError
from yoda_step_io.scores import METRIC_NAMES
from yoda_step_io.values import names_in

# ragas posts usage analytics unless told not to, and 0.3+ warns without a git binary.
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

if TYPE_CHECKING:
    import pandas as pd
    from ragas.metrics.base import SingleTurnMetric


def _rouge(name: str, rouge_type: Literal["rouge1", "rougeL"]) -> Callable[[], SingleTurnMetric]:
    def make() -> SingleTurnMetric:
        from ragas.metrics import RougeScore

        return RougeScore(name=name, rouge_type=rouge_type, mode="fmeasure")

    return make


def _similarity(name: str, measure: str) -> Callable[[], SingleTurnMetric]:
    def make() -> SingleTurnMetric:
        from ragas.metrics import NonLLMStringSimilarity
        from ragas.metrics._string import DistanceMeasure

        return NonLLMStringSimilarity(name=name, distance_measure=DistanceMeasure(measure))

    return make


def _bleu() -> SingleTurnMetric:
    from ragas.metrics import BleuScore

    return BleuScore(name="bleu")


def _exact_match() -> SingleTurnMetric:
    from ragas.metrics import ExactMatch

    return ExactMatch(name="exact_match")


def _string_present() -> SingleTurnMetric:
    from ragas.metrics import StringPresence

    return StringPresence(name="string_present")


#: Metric name -> factory. ROUGE-L is the headline: word order is what Yoda changes.
METRICS: dict[str, Callable[[], SingleTurnMetric]] = {
    "rouge_l": _rouge("rouge_l", "rougeL"),
    "rouge_1": _rouge("rouge_1", "rouge1"),
    "bleu": _bleu,
    "levenshtein_similarity": _similarity("levenshtein_similarity", "levenshtein"),
    "jaro_winkler_similarity": _similarity("jaro_winkler_similarity", "jaro_winkler"),
    "exact_match": _exact_match,
    "string_present": _string_present,
}
assert tuple(METRICS) == METRIC_NAMES, "the shared names are these factories'"
#: ``--metrics``: which to score (empty: all of them).
METRIC_LIST = names_in(METRIC_NAMES, f"empty (all) or a comma list of {', '.join(METRIC_NAMES)}")


def metric_definitions(names: Sequence[str] = METRIC_NAMES) -> list[SingleTurnMetric]:
    """Fresh ragas metric objects for ``names`` (every metric if none), in the order given.

    Raises:
        BadValueError: a name that is not a metric here.
    """
    chosen = tuple(names) or METRIC_NAMES
    problem = METRIC_LIST.problem(chosen)
    if problem:
        raise BadValueError("--metrics", ",".join(chosen), problem)
    return [METRICS[name]() for name in chosen]


def compute_metrics(
    user_input: str,
    response: str,
    reference: str,
    metric_definitions: Sequence[SingleTurnMetric],
) -> dict[str, float]:
    """Score one prediction: a ``SingleTurnSample`` through every metric, by metric name.

    Every metric here lies in [0, 1]; scores are clipped to it (sacrebleu's BLEU of identical
    strings comes out as 1.0000000000000004).
    """
    from ragas import SingleTurnSample

    sample = SingleTurnSample(user_input=user_input, response=response, reference=reference)
    return {
        metric.name: min(1.0, max(0.0, float(metric.single_turn_score(sample))))
        for metric in metric_definitions
    }


def aggregate_metrics(per_sample_metrics: pd.DataFrame) -> dict[str, float]:
    """Mean, median, standard deviation, min and max of every numeric column, and the count.

    Keys are ``<metric>_mean``, ``<metric>_median``, ``<metric>_std`` (population),
    ``<metric>_min``, ``<metric>_max`` and ``samples``.
    """
    numeric = per_sample_metrics.select_dtypes("number")
    aggregates: dict[str, Any] = {"samples": float(len(per_sample_metrics))}
    for name in numeric.columns:
        column = numeric[name].astype(float)
        aggregates.update(
            {
                f"{name}_mean": float(column.mean()),
                f"{name}_median": float(column.median()),
                f"{name}_std": float(column.std(ddof=0)),
                f"{name}_min": float(column.min()),
                f"{name}_max": float(column.max()),
            }
        )
    return aggregates
