"""Score a predictions CSV: per-sample results CSV plus aggregated metrics."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from yoda_evaluation.metrics import aggregate_metrics, compute_metrics, metric_definitions
from yoda_step_io import StepError, local_inputs, outputs_in_place, timing
from yoda_step_io.answers import degenerate_counts, warn_if_degenerate
from yoda_step_io.contract import METRICS_FILE, PREDICTION_COLUMNS
from yoda_step_io.progress import ProgressLog

if TYPE_CHECKING:  # pandas and ragas are imported where used: `--help` stays instant
    import pandas as pd
    from ragas.metrics.base import SingleTurnMetric

logger = logging.getLogger(__name__)

#: The longest text a predictions cell may hold: far above any answer max_new_tokens allows, far
#: below what makes the O(n·m) string metrics crawl (a 50 MB answer took minutes).
MAX_TEXT_CHARS = 100_000


def read_predictions(path: Path, *, allow_empty: bool = False) -> pd.DataFrame:
    """The predictions CSV with every cell as text (an empty or ``NA`` answer stays a string).

    ``allow_empty``: a header without rows is fine (the base model's answers, turned off).

    Raises:
        StepError: missing, empty, non-UTF-8 or malformed file, a missing column, or no rows.
    """
    import pandas as pd

    if not path.is_file():
        raise StepError(f"predictions file {path} does not exist")
    data = path.read_bytes()
    if not data.strip():
        raise StepError(f"predictions file {path} is empty: expected a CSV with a header row")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise StepError(f"predictions file {path} is not UTF-8 (byte {error.start})") from error
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise StepError(f"predictions file {path} is not a valid CSV: {error}") from error
    missing = [column for column in PREDICTION_COLUMNS if column not in frame.columns]
    if missing:
        raise StepError(
            f"predictions file {path} lacks column(s) {', '.join(missing)}; "
            f"expected the header {','.join(PREDICTION_COLUMNS)}"
        )
    if frame.empty and not allow_empty:
        raise StepError(f"predictions file {path} has a header but no rows to score")
    for column in PREDICTION_COLUMNS:
        too_long = frame[column].str.len() > MAX_TEXT_CHARS
        if too_long.any():
            row = int(too_long.to_numpy().argmax()) + 1
            raise StepError(
                f"predictions file {path}, row {row}: {column} is longer than {MAX_TEXT_CHARS:,} "
                "characters (scoring time grows with its square): not a model's answer to score"
            )
    return frame


def score_predictions(
    frame: pd.DataFrame, metrics: Sequence[SingleTurnMetric], label: str = "scoring"
) -> pd.DataFrame:
    """One row per prediction: ``user_input, reference, response`` and one column per metric."""
    import pandas as pd

    rows = []
    progress = ProgressLog(logger, label, len(frame), "samples")
    for number, (user, reference, response) in enumerate(
        zip(frame["user_input"], frame["reference"], frame["extracted_response"], strict=True),
        start=1,
    ):
        scores = compute_metrics(user, response, reference, metrics)
        rows.append({"user_input": user, "reference": reference, "response": response, **scores})
        progress.update(number)
    return pd.DataFrame(rows)


def compare_with_baselines(
    tuned: pd.DataFrame, base: pd.DataFrame | None, echo: pd.DataFrame, names: Sequence[str]
) -> dict[str, float]:
    """Per metric, the baselines' means and the fine-tuned model's uplift over each.

    The uplift is a difference of means in score points (0.12: twelve hundredths of ROUGE-L
    better). Keys: ``base_<m>_mean``, ``echo_<m>_mean``, ``<m>_uplift_vs_base``,
    ``<m>_uplift_vs_echo`` (the base model's only where its answers exist).
    """
    summary: dict[str, float] = {}
    for name in names:
        tuned_mean = float(tuned[name].mean())
        echo_mean = float(echo[name].mean())
        summary[f"echo_{name}_mean"] = echo_mean
        summary[f"{name}_uplift_vs_echo"] = tuned_mean - echo_mean
        if base is not None:
            base_mean = float(base[name].mean())
            summary[f"base_{name}_mean"] = base_mean
            summary[f"{name}_uplift_vs_base"] = tuned_mean - base_mean
    return summary


def echo_baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """The answer that repeats the user's sentence: Yoda reorders the same words, so it scores
    well on word-overlap metrics without any model."""
    echo = frame.copy()
    echo["extracted_response"] = echo["user_input"]
    return echo


def _base_predictions(path: Path | None, tuned: pd.DataFrame) -> pd.DataFrame | None:
    """The base model's answers, row for row with the fine-tuned ones; ``None`` if not made."""
    if path is None:
        return None
    base = read_predictions(path, allow_empty=True)
    if base.empty:
        logger.info("no base model answers in %s: the report has no base model row", path)
        return None
    if list(base["user_input"]) != list(tuned["user_input"]):
        raise StepError(
            f"base predictions {path} do not answer the same sentences, in the same order, as "
            "the fine-tuned predictions: both must come from one inference step"
        )
    return base


@dataclass(frozen=True)
class EvaluationResult:
    aggregates: dict[str, float]
    seconds_per_sample: float


def evaluate_predictions(
    predictions_path: Path,
    results_path: Path,
    metrics_path: Path,
    metric_names: Sequence[str],
    *,
    base_predictions_path: Path | None = None,
    upstream: dict[str, float] | None = None,
) -> EvaluationResult:
    """Score the fine-tuned model's answers, the base model's and the echo baseline's; write the
    per-sample results CSV and the metrics folder, or neither.

    Args:
        upstream: counts the inference step recorded (``cut_answers``, ``base_cut_answers``),
            carried into the metrics.
    """
    metrics = metric_definitions(metric_names)  # unknown names fail here, before any reading
    frame = read_predictions(predictions_path)
    base_frame = _base_predictions(base_predictions_path, frame)
    timing.mark("imports")  # ragas and pandas
    names = [metric.name for metric in metrics]
    start = time.perf_counter()
    results = score_predictions(frame, metrics)
    seconds_per_sample = (time.perf_counter() - start) / len(frame)
    echo = score_predictions(echo_baseline(frame), metrics, label="scoring (echo)")
    base = None if base_frame is None else score_predictions(base_frame, metrics, "scoring (base)")
    upstream = upstream or {}
    degenerate: dict[str, dict[str, int]] = {}
    for who, prefix, scored in (("fine-tuned model", "", results), ("base model", "base_", base)):
        if scored is not None:
            counts = degenerate_counts(list(scored["response"]), prefix)
            if f"{prefix}cut_answers" in upstream:
                counts[f"{prefix}cut_answers"] = int(upstream[f"{prefix}cut_answers"])
            warn_if_degenerate(logger, who, counts, len(frame))
            degenerate[prefix] = counts
    aggregates = {
        **aggregate_metrics(results),
        **compare_with_baselines(results, base, echo, names),
        **{name: float(count) for counts in degenerate.values() for name, count in counts.items()},
    }
    if base is not None:
        results["base_response"] = base["response"]
        for name in names:
            results[f"base_{name}"] = base[name]
    sources = local_inputs(predictions_path, base_predictions_path)
    with outputs_in_place(results_path, metrics_path, inputs=sources):
        # RFC 4180 line ends: a lone "\r" inside an answer is then quoted, not a line break
        results.to_csv(results_path, index=False, encoding="utf-8", lineterminator="\r\n")
        metrics_path.mkdir()
        (metrics_path / METRICS_FILE).write_text(json.dumps(aggregates, indent=2))
    headline = {
        key: round(aggregates[key], 4)
        for key in ("rouge_l_mean", "base_rouge_l_mean", "echo_rouge_l_mean")
        if key in aggregates
    }
    logger.info(
        "scored %d predictions (%.2f ms each): %s", len(frame), 1000 * seconds_per_sample, headline
    )
    return EvaluationResult(aggregates=aggregates, seconds_per_sample=seconds_per_sample)
