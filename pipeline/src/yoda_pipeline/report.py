"""Print a finished run's evaluation (`yoda-pipeline report`): the headline (fine-tuned, base
model, echo baseline), the per-sample statistics, the best and worst samples, and where the HTML
report is."""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
from pathlib import Path

from yoda_pipeline.artifacts import add_source_argument, newest_run_with, run_output
from yoda_pipeline.settings import PipelineSettings
from yoda_step_io import StepError
from yoda_step_io.contract import (
    DECISION,
    DECISION_FILE,
    EVALUATION_RESULTS,
    HTML,
    METRICS,
    RESULT_TEXT_COLUMNS,
    VERTEX_MODEL,
    MissingMetricsError,
    read_metrics,
)
from yoda_step_io.gcs import read_location
from yoda_step_io.scores import format_headline

EVALUATION_TASK = "evaluation-component"
REPORT_TASK = "report-component"
GATE_TASK = "gate-component"
REGISTER_TASK = "register-component"


def evaluation_results_location(source: str) -> str:
    """The per-sample results CSV behind ``source``: the artifact itself or a local run folder."""
    if source.startswith("gs://"):
        return source
    path = Path(source)
    if path.is_dir():
        found = run_output(path, EVALUATION_TASK, EVALUATION_RESULTS)
        if found is None:
            raise StepError(f"no evaluation results under {source}: did the run finish?")
        return str(found)
    if not path.is_file():
        raise StepError(f"{source} is neither a gs:// URI, a run folder nor a results file")
    return str(path)


def read_text(location: str) -> str:
    """A text file from disk or GCS.

    Raises:
        StepError: no such file, bucket or object.
    """
    try:
        return read_location(location).decode("utf-8")
    except FileNotFoundError as error:
        if location.startswith("gs://"):
            raise StepError(f"cannot read {location}: no such bucket or object") from error
        raise StepError(f"{location} does not exist") from error


def read_results(location: str) -> list[dict[str, str]]:
    """Rows of the results CSV, from disk or GCS."""
    rows = list(csv.DictReader(io.StringIO(read_text(location))))
    if not rows:
        raise StepError(f"{location} holds no scored sample")
    return rows


def read_aggregates(results_location: str) -> dict[str, float] | None:
    """The evaluation's aggregates (``metrics/metrics.json`` beside the results); ``None`` where
    there are none (a results file on its own, or a run without the evaluation's metrics).

    Raises:
        StepError: the file is there but unreadable, or not a JSON object of numbers.
    """
    parent = results_location.rstrip("/").rsplit("/", 1)[0]
    try:
        return read_metrics(f"{parent}/{METRICS}")
    except MissingMetricsError:
        return None


def html_report(run_dir: Path) -> Path | None:
    """The report step's HTML in a local run folder, if the run got that far."""
    return run_output(run_dir, REPORT_TASK, HTML)


def gate_outcome(run_dir: Path) -> str | None:
    """The quality gate's decision in a local run, and the registration it led to, if any."""
    decision_dir = run_output(run_dir, GATE_TASK, DECISION)
    if decision_dir is None or not (decision_dir / DECISION_FILE).is_file():
        return None
    decision = json.loads((decision_dir / DECISION_FILE).read_text(encoding="utf-8"))
    if not decision["passed"]:
        return f"Quality gate: not passed, not registered ({decision['reasons']})"
    outcome = f"Quality gate: passed ({decision['reasons']})"
    registered = run_output(run_dir, REGISTER_TASK, "executor_output.json")
    if registered is not None:
        output = json.loads(registered.read_text(encoding="utf-8"))
        model = output["artifacts"][VERTEX_MODEL]["artifacts"][0]["metadata"]
        if model.get("registered") is False:
            return f"{outcome}; not registered: {model['reason']}"
        default = "the default version" if model["is_default_version"] else "not the default"
        outcome += f"; registered {model['resourceName']} ({default})"
    return outcome


def format_run_summary(
    aggregates: dict[str, float] | None, html: Path | None, gate: str | None = None
) -> str:
    """The headline table, the gate's outcome and where the HTML report is: the end of
    `make run-local`."""
    lines = [format_headline(aggregates)] if aggregates else []
    lines += [gate] if gate else []
    if html is not None:
        lines.append(f"HTML report: {html}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def format_report(rows: list[dict[str, str]], by: str, top: int) -> str:
    """Aggregates per metric, then the ``top`` best and worst samples by metric ``by``."""
    metrics = [name for name in rows[0] if name not in RESULT_TEXT_COLUMNS]
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
            lines.append(f"          answered: {_one_line(row['response']) or '(empty)'}")
            if "base_response" in row:
                lines.append(
                    f"          base model: {_one_line(row['base_response']) or '(empty)'}"
                )
    return "\n".join(lines)


def add_report_flags(parser: argparse.ArgumentParser) -> None:
    add_source_argument(parser, "evaluation_results artifact (gs:// or local file)")
    parser.add_argument("--by", default="rouge_l", help="metric that ranks the samples")
    parser.add_argument("--top", type=int, default=3, help="how many best and worst")


def report_command(args: argparse.Namespace, settings: PipelineSettings) -> None:
    """report: print a run's headline, its per-sample statistics, its best and worst samples and
    where its HTML report is."""
    source: str | None = args.source
    run_dir: Path | None = None
    if source is None:
        run_dir, results = newest_run_with(
            settings.local_runs_dir, EVALUATION_TASK, EVALUATION_RESULTS
        )
        source = str(results)
    elif Path(source).is_dir():
        run_dir = Path(source)
    location = evaluation_results_location(source)
    aggregates = read_aggregates(location)
    if aggregates:
        print(format_headline(aggregates), end="\n\n")
    print(format_report(read_results(location), args.by, args.top))
    if run_dir is not None:  # a local run: the gate's outcome and the HTML report, if any
        tail = format_run_summary(None, html_report(run_dir), gate_outcome(run_dir))
        if tail:
            print(f"\n{tail}")
