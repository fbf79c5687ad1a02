"""Score a predictions CSV: per-sample results CSV plus aggregated metrics."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from yoda_evaluation.metrics import aggregate_metrics, compute_metrics, metric_definitions
from yoda_step_io import StepError, outputs_in_place, timing
from yoda_step_io.progress import ProgressLog

if TYPE_CHECKING:  # pandas and ragas are imported where used: `--help` stays instant
    import pandas as pd
    from ragas.metrics.base import SingleTurnMetric

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("user_input", "reference", "extracted_response")


def read_predictions(path: Path) -> pd.DataFrame:
    """The predictions CSV with every cell as text (an empty or ``NA`` answer stays a string).

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
    if frame.empty:
        raise StepError(f"predictions file {path} has a header but no rows to score")
    return frame


def score_predictions(frame: pd.DataFrame, metrics: Sequence[SingleTurnMetric]) -> pd.DataFrame:
    """One row per prediction: ``user_input, reference, response`` and one column per metric."""
    import pandas as pd

    rows = []
    progress = ProgressLog(logger, "scoring", len(frame), "samples")
    for number, (user, reference, response) in enumerate(
        zip(frame["user_input"], frame["reference"], frame["extracted_response"], strict=True),
        start=1,
    ):
        scores = compute_metrics(user, response, reference, metrics)
        rows.append({"user_input": user, "reference": reference, "response": response, **scores})
        progress.update(number)
    return pd.DataFrame(rows)


def _html_report(aggregates: dict[str, float]) -> str:
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{value:.4f}</td></tr>"
        for name, value in aggregates.items()
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>Yoda evaluation</title>"
        f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>\n"
    )


@dataclass(frozen=True)
class EvaluationResult:
    aggregates: dict[str, float]
    seconds_per_sample: float


def evaluate_predictions(
    predictions_path: Path,
    results_path: Path,
    metrics_path: Path,
    metric_names: Sequence[str],
) -> EvaluationResult:
    """Score every prediction; write the results CSV and the metrics folder, or neither."""
    metrics = metric_definitions(metric_names)  # unknown names fail here, before any reading
    frame = read_predictions(predictions_path)
    timing.mark("imports")  # ragas and pandas
    start = time.perf_counter()
    results = score_predictions(frame, metrics)
    seconds_per_sample = (time.perf_counter() - start) / len(frame)
    aggregates = aggregate_metrics(results)
    with outputs_in_place(results_path, metrics_path):
        results.to_csv(results_path, index=False, encoding="utf-8")
        metrics_path.mkdir()
        (metrics_path / "metrics.json").write_text(json.dumps(aggregates, indent=2))
        (metrics_path / "report.html").write_text(_html_report(aggregates), encoding="utf-8")
    logger.info(
        "scored %d predictions (%.2f ms each): %s",
        len(frame),
        1000 * seconds_per_sample,
        {k: round(v, 4) for k, v in aggregates.items() if k.endswith("_mean")},
    )
    return EvaluationResult(aggregates=aggregates, seconds_per_sample=seconds_per_sample)
