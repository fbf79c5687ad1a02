"""The run's report for people: a self-contained HTML page (inline SVG charts, no script, font or
image from elsewhere) and the same facts as Markdown, for KFP's ``HTML`` and ``Markdown``
artifacts (Vertex AI's "View HTML").

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
from html import escape
from pathlib import Path
from typing import Any

from yoda_evaluation.charts import svg_histogram, svg_lines
from yoda_evaluation.sweep import load_sweep, recipe_text, sweep_html, sweep_markdown
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


def _value(text: str) -> str:
    try:
        return f"{float(text):.3f}"
    except ValueError:
        return text


def _facts(inputs: ReportInputs) -> list[tuple[str, str]]:
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


def _samples_html(title: str, rows: list[dict[str, str]], by: str) -> str:
    has_base = any("base_response" in row for row in rows)
    head = ["input", "reference", "fine-tuned answer", by] + (
        ["base answer", f"base {by}"] if has_base else []
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(cell) if cell else '<em>(empty)</em>'}</td>"
            for cell in [row["user_input"], row["reference"], row["response"]]
        )
        + f'<td class="num">{_value(row[by])}</td>'
        + (
            f"<td>{escape(row.get('base_response', '')) or '<em>(empty)</em>'}</td>"
            f'<td class="num">{_value(row.get(f"base_{by}", ""))}</td>'
            if has_base
            else ""
        )
        + "</tr>"
        for row in rows
    )
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<h2>{escape(title)}</h2><table class="samples"><tr>{header}</tr>{body}</table>'


STYLE = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em;color:#222;
max-width:1150px}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;
padding:.3em .6em;vertical-align:top;overflow-wrap:anywhere}th{background:#f3f3f3;text-align:left;
overflow-wrap:normal;white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.up{color:#276749;
font-weight:600}.down{color:#c53030;font-weight:600}.samples{table-layout:fixed;width:100%}
.samples th{white-space:normal}
@media (max-width:960px){body{margin:1em}table{font-size:14px}td,th{padding:.25em .45em}}
.chart{width:100%;font-size:11px;display:block}.charts{display:flex;flex-wrap:wrap;gap:2em}
.charts section{flex:1 1 320px;max-width:560px}"""


def _headline_cell(value: float | None, uplift: bool) -> str:
    if value is None:
        return '<td class="num">-</td>'
    if not uplift:
        return f'<td class="num">{value:.3f}</td>'
    sign = "up" if value > 0 else "down" if value < 0 else ""
    return f'<td class="num {sign}">{value:+.3f}</td>'


def render_html(inputs: ReportInputs) -> str:
    """The whole report as one self-contained HTML page."""
    names = metric_names(inputs.aggregates)
    # metrics as rows, models as columns: a handful of columns, readable in a narrow pane
    columns = headline_rows(inputs.aggregates)
    head = "".join(f'<th class="num">{escape(label)}</th>' for label, _ in columns)
    rows = "".join(
        f"<tr><th>{escape(name)}</th>"
        + "".join(
            _headline_cell(values[i], label.startswith("uplift")) for label, values in columns
        )
        + "</tr>"
        for i, name in enumerate(names)
    )
    samples = int(inputs.aggregates.get("samples", 0))
    degenerate = "".join(
        f"<tr><th>{escape(label)}</th>"
        + "".join(f'<td class="num">{"-" if n is None else n}</td>' for n in counts.values())
        + "</tr>"
        for label, counts in degenerate_rows(inputs.aggregates)
    )
    by = inputs.ranking_metric
    distributions = {"fine-tuned": [float(row[by]) for row in inputs.samples]}
    if any(f"base_{by}" in row for row in inputs.samples):
        distributions["base model"] = [float(row[f"base_{by}"]) for row in inputs.samples]
    curves = loss_curves(inputs.log_history)
    loss_chart = (
        svg_lines(curves, "step", "loss") if curves else "<p>No training log in this run.</p>"
    )
    best, worst = ranked(inputs)
    facts = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>"
        for name, value in _facts(inputs)
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>Yoda fine-tuning report</title><style>{STYLE}</style></head><body>"
        "<h1>Yoda fine-tuning report</h1>"
        f"<p>{samples} test samples. Means per metric; the uplift is the fine-tuned model's mean "
        "minus the baseline's (the echo baseline answers with the user's own sentence).</p>"
        f'<table id="headline"><tr><th></th>{head}</tr>{rows}</table>{_champion(inputs)}'
        "<h2>Degenerate answers</h2><table><tr><th></th><th>empty</th>"
        f"<th>one word repeated</th><th>cut at max_new_tokens</th></tr>{degenerate}</table>"
        '<div class="charts"><section><h2>Loss by step</h2>'
        f"{loss_chart}</section><section><h2>Per-sample {escape(by)}</h2>"
        f"{svg_histogram(distributions, by)}</section></div>"
        f"{sweep_html(inputs.sweep) if len(inputs.sweep) > 1 else ''}"
        f"{_samples_html(f'Best {len(best)} by {by}', best, by)}"
        f"{_samples_html(f'Worst {len(worst)} by {by}', worst, by)}"
        f"<h2>Run</h2><table>{facts}</table></body></html>\n"
    )


def _champion(inputs: ReportInputs) -> str:
    """The champion's recipe beside the headline scores, in a sweep of several."""
    if len(inputs.sweep) < 2:
        return ""
    number = next((row["number"] for row in inputs.sweep if row.get("champion")), "?")
    return (f"<p>The model above is the sweep's champion, recipe {number} of "
            f"{len(inputs.sweep)}: {escape(recipe_text(inputs.recipe))}.</p>")  # fmt: skip


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
            f"{_md(r.get('base_response', '-'))} | {_value(r[by])} |"
            for r in rows
        ]
    lines += ["", "## Run", "", "| | |", "|---|---|"]
    lines += [f"| {_md(name)} | {_md(value)} |" for name, value in _facts(inputs)]
    return "\n".join(lines) + "\n"
