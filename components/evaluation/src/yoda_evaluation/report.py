"""The run's report for people: its inputs, what it ranks, and the Markdown (the HTML page with
the same facts and its charts: :mod:`yoda_evaluation.report_html`), for KFP's ``HTML`` and
``Markdown`` artifacts (Vertex AI's "View HTML").

It shows the headline table (fine-tuned, base model and echo baseline by metric, the uplifts
coloured), a sweep's recipes (the champion's beside the headline), the training and validation
loss by step, the distribution of per-sample ROUGE-L for
the fine-tuned and the base model, the ten best and ten worst samples, the degenerate answers,
and the run's hyper-parameters and data counts.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yoda_evaluation.sweep import load_sweep, recipe_text, sweep_markdown
from yoda_step_io import StepError
from yoda_step_io.contract import HYPERPARAMETERS_FILE, LOG_HISTORY_FILE, METRICS_FILE, read_metrics
from yoda_step_io.scores import degenerate_rows, format_score, headline_rows, metric_names

#: How many best and worst samples the report shows.
TOP = 10


@dataclass(frozen=True)
class ReportInputs:
    """What the report is made of, read from the run's artifacts."""

    aggregates: dict[str, float]
    samples: list[dict[str, str]]
    log_history: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    sweep: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] | None = None

    @property
    def ranking_metric(self) -> str:
        names = metric_names(self.aggregates)
        return "rouge_l" if "rouge_l" in names else names[0]


def _json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise StepError(f"{what} {path} does not exist") from error
    except json.JSONDecodeError as error:
        raise StepError(f"{what} {path} is not valid JSON: {error}") from error
    except UnicodeDecodeError as error:
        raise StepError(f"{what} {path} is not UTF-8 text (byte {error.start})") from error


def load_report_inputs(
    results: Path, evaluation_metrics: Path, training_metrics: Path | None, model: Path | None
) -> ReportInputs:
    """Read the evaluation's results and metrics, and the training's metrics and model folder
    (their log history and hyper-parameters, where present).

    Raises:
        StepError: the evaluation's outputs are missing or unreadable.
    """
    if not results.is_file():
        raise StepError(f"evaluation results {results} do not exist")
    try:
        with results.open(encoding="utf-8", newline="") as handle:
            samples = list(csv.DictReader(handle))
    except UnicodeDecodeError as error:
        raise StepError(
            f"evaluation results {results} are not UTF-8 (byte {error.start})"
        ) from error
    except csv.Error as error:
        raise StepError(f"evaluation results {results} are not a valid CSV: {error}") from error
    aggregates = read_metrics(evaluation_metrics)
    if not metric_names(aggregates):
        raise StepError(f"{evaluation_metrics / METRICS_FILE} holds no <metric>_mean")
    history: list[dict[str, Any]] = []
    training: dict[str, Any] = {}
    if training_metrics is not None:
        if (training_metrics / LOG_HISTORY_FILE).is_file():
            history = _json(training_metrics / LOG_HISTORY_FILE, "training log history")
        if (training_metrics / METRICS_FILE).is_file():
            training = _json(training_metrics / METRICS_FILE, "training metrics")
    hyperparameters: dict[str, Any] = {}
    if model is not None and (model / HYPERPARAMETERS_FILE).is_file():
        hyperparameters = _json(model / HYPERPARAMETERS_FILE, "hyper-parameters")
    sweep, recipe = load_sweep(training_metrics, model)
    return ReportInputs(aggregates, samples, history, training, hyperparameters, sweep, recipe)


def loss_curves(history: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """``{"training": [(step, loss)…], "validation": [(step, eval_loss)…]}`` from the log."""
    curves: dict[str, list[tuple[float, float]]] = {"training": [], "validation": []}
    for entry in history:
        if "step" not in entry:
            continue
        if "loss" in entry:
            curves["training"].append((float(entry["step"]), float(entry["loss"])))
        if "eval_loss" in entry:
            curves["validation"].append((float(entry["step"]), float(entry["eval_loss"])))
    return {name: points for name, points in curves.items() if points}


def ranked(inputs: ReportInputs) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The ``TOP`` best and worst samples by the ranking metric (fine-tuned model)."""
    by = inputs.ranking_metric
    order = sorted(inputs.samples, key=lambda row: float(row[by]), reverse=True)
    return order[:TOP], order[::-1][:TOP]


def score_text(text: str) -> str:
    try:
        return f"{float(text):.3f}"
    except ValueError:
        return text


def run_facts(inputs: ReportInputs) -> list[tuple[str, str]]:
    """Hyper-parameters and data counts, as (name, value) pairs."""
    training = inputs.training
    counts = [
        ("train conversations", training.get("train_conversations")),
        ("validation conversations", training.get("validation_conversations")),
        ("test samples", inputs.aggregates.get("samples")),
        ("training steps", training.get("train_steps")),
        ("final training loss", training.get("train_loss")),
        ("final validation loss", training.get("eval_loss")),
    ]
    facts = [(name, f"{value:g}") for name, value in counts if isinstance(value, int | float)]
    facts += [(name, str(value)) for name, value in sorted(inputs.hyperparameters.items())]
    return facts


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "*(empty)*"


def render_markdown(inputs: ReportInputs) -> str:
    """The same facts as Markdown tables (no charts)."""
    names = metric_names(inputs.aggregates)
    lines = ["# Yoda fine-tuning report", "", "| | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]  # fmt: skip
    for label, values in headline_rows(inputs.aggregates):
        cells = [format_score(value, label.startswith("uplift")) for value in values]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| degenerate answers | empty | one word repeated | cut |", "|---|---|---|---|"]
    for label, counts in degenerate_rows(inputs.aggregates):
        cells = ["-" if n is None else str(n) for n in counts.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if len(inputs.sweep) > 1:
        lines += ["", f"The champion: {recipe_text(inputs.recipe)}.", *sweep_markdown(inputs.sweep)]
    by = inputs.ranking_metric
    for title, rows in zip(("Best", "Worst"), ranked(inputs), strict=True):
        lines += ["", f"## {title} {len(rows)} by {by}", ""]
        lines += ["| input | reference | fine-tuned | base | score |", "|---|---|---|---|---|"]
        lines += [
            f"| {_md(r['user_input'])} | {_md(r['reference'])} | {_md(r['response'])} | "
            f"{_md(r.get('base_response', '-'))} | {score_text(r[by])} |"
            for r in rows
        ]
    lines += ["", "## Run", "", "| | |", "|---|---|"]
    lines += [f"| {_md(name)} | {_md(value)} |" for name, value in run_facts(inputs)]
    return "\n".join(lines) + "\n"
