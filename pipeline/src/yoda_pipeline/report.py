"""Print a finished run's evaluation: aggregate metrics, then the best and worst samples."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from yoda_pipeline.artifacts import run_output
from yoda_step_io import StepError
from yoda_step_io.gcs import split_gs_uri, storage_client

EVALUATION_TASK = "evaluation-component"
TEXT_COLUMNS = ("user_input", "reference", "response")


def evaluation_results_location(source: str) -> str:
    """The per-sample results CSV behind ``source``: the artifact itself or a local run folder."""
    if source.startswith("gs://"):
        return source
    path = Path(source)
    if path.is_dir():
        found = run_output(path, EVALUATION_TASK, "evaluation_results")
        if found is None:
            raise StepError(f"no evaluation results under {source}: did the run finish?")
        return str(found)
    if not path.is_file():
        raise StepError(f"{source} is neither a gs:// URI, a run folder nor a results file")
    return str(path)


def read_results(location: str) -> list[dict[str, str]]:
    """Rows of the results CSV, from disk or GCS."""
    if location.startswith("gs://"):
        from google.api_core import exceptions

        bucket, key = split_gs_uri(location)
        try:
            text = storage_client().bucket(bucket).blob(key).download_as_text(encoding="utf-8")
        except exceptions.NotFound as error:
            raise StepError(f"cannot read {location}: no such bucket or object") from error
    else:
        text = Path(location).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise StepError(f"{location} holds no scored sample")
    return rows


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def format_report(rows: list[dict[str, str]], by: str, top: int) -> str:
    """Aggregates per metric, then the ``top`` best and worst samples by metric ``by``."""
    metrics = [name for name in rows[0] if name not in TEXT_COLUMNS]
    if by not in metrics:
        raise StepError(f"no metric {by!r} in the results; they have: {', '.join(metrics)}")
    lines = [f"{len(rows)} samples", f"{'metric':<26}{'mean':>8}{'median':>8}{'min':>8}{'max':>8}"]
    for name in metrics:
        values = [float(row[name]) for row in rows]
        lines.append(
            f"{name:<26}{statistics.fmean(values):8.3f}{statistics.median(values):8.3f}"
            f"{min(values):8.3f}{max(values):8.3f}"
        )
    ranked = sorted(rows, key=lambda row: float(row[by]), reverse=True)
    for title, chosen in (("Best", ranked[:top]), ("Worst", ranked[::-1][:top])):
        lines.append(f"\n{title} {len(chosen)} by {by}:")
        for row in chosen:
            lines.append(f"  [{float(row[by]):.3f}] {_one_line(row['user_input'])}")
            lines.append(f"          expected: {_one_line(row['reference'])}")
            lines.append(f"          answered: {_one_line(row['response'])}")
    return "\n".join(lines)
