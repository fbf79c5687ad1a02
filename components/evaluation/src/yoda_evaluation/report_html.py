"""The report as one self-contained HTML page: inline SVG charts, no script, font or image from
elsewhere (the facts and the Markdown: :mod:`yoda_evaluation.report`)."""

from __future__ import annotations

from html import escape

from yoda_evaluation.charts import svg_histogram, svg_lines
from yoda_evaluation.report import ReportInputs, loss_curves, ranked, run_facts, score_text
from yoda_evaluation.sweep import recipe_text, sweep_html
from yoda_step_io.scores import degenerate_rows, headline_rows, metric_names


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
        + f'<td class="num">{score_text(row[by])}</td>'
        + (
            f"<td>{escape(row.get('base_response', '')) or '<em>(empty)</em>'}</td>"
            f'<td class="num">{score_text(row.get(f"base_{by}", ""))}</td>'
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
        for name, value in run_facts(inputs)
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
