"""The report's sweep section: the recipes fine-tuned side by side, the champion marked (the
lowest validation answer loss), each recipe's validation curve on one chart, and the champion's
recipe, from the champion step's ``sweep.json`` (in the training Metrics) and ``recipe.json``
(in the Model)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from yoda_evaluation.charts import svg_lines
from yoda_step_io.contract import RECIPE_FILE, SWEEP_FILE

#: The table's columns: (heading, the outcome's key, how the number is written).
COLUMNS = (
    ("validation answer loss", "validation_answer_loss", "{:.4f}"),
    ("eval loss", "eval_loss", "{:.4f}"),
    ("train loss", "train_loss", "{:.4f}"),
    ("steps", "train_steps", "{:.0f}"),
    ("tokens/s", "tokens_per_second", "{:.0f}"),
    ("minutes", "minutes", "{:.1f}"),
)


Rows = list[dict[str, Any]]


def load_sweep(
    training_metrics: Path | None, model: Path | None
) -> tuple[Rows, dict[str, Any] | None]:
    """The sweep's rows and the champion's recipe, where the run has them (JSON the champion
    step wrote; an unreadable file is left out, as a report of no sweep)."""

    def read(path: Path | None) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path else None
        except (OSError, ValueError):
            return None

    rows = read(training_metrics / SWEEP_FILE if training_metrics else None)
    recipe = read(model / RECIPE_FILE if model else None)
    return (rows if isinstance(rows, list) else []), (recipe if isinstance(recipe, dict) else None)


def recipe_text(recipe: dict[str, Any] | None) -> str:
    """A recipe in a few words: ``learning_rate=0.001, lora_r=16``; {} is the parameters'."""
    if not recipe:
        return "the parameters as given (no overrides)"
    return ", ".join(f"{name}={value}" for name, value in recipe.items())


def _cell(row: dict[str, Any], key: str, form: str) -> str:
    value = row.get(key)
    return form.format(value) if isinstance(value, int | float) else "-"


def _status(row: dict[str, Any]) -> str:
    if row.get("champion"):
        return "champion"
    return "finished" if row.get("status") == "finished" else f"failed: {row.get('reason', '')}"


def sweep_html(rows: list[dict[str, Any]]) -> str:
    """The section as HTML: the table, then the validation curves."""
    head = "".join(f'<th class="num">{escape(title)}</th>' for title, _, _ in COLUMNS)
    marked = ' class="up"'
    body = "".join(
        f"<tr{marked if row.get('champion') else ''}><td>{row['number']}</td>"
        f"<td>{escape(recipe_text(row.get('recipe')))}</td>"
        + "".join(f'<td class="num">{_cell(row, key, form)}</td>' for _, key, form in COLUMNS)
        + f"<td>{escape(_status(row))}</td></tr>"
        for row in rows
    )
    curves = {f"recipe {row['number']}": [(x, y) for x, y in row.get("curve", [])]
              for row in rows if row.get("curve")}  # fmt: skip
    chart = svg_lines(curves, "step", "validation loss") if curves else ""
    return (
        f"<h2>Sweep: {len(rows)} recipes</h2><p>The champion has the lowest validation answer "
        "loss (the same measure for every recipe; the test split is not looked at).</p>"
        f"<table><tr><th>#</th><th>recipe</th>{head}<th>status</th></tr>{body}</table>{chart}"
    )


def sweep_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The section's table as Markdown lines."""
    lines = ["", f"## Sweep: {len(rows)} recipes", "",
             "| # | recipe | " + " | ".join(t for t, _, _ in COLUMNS) + " | status |",
             "|---" * (len(COLUMNS) + 3) + "|"]  # fmt: skip
    lines += [
        f"| {row['number']} | {recipe_text(row.get('recipe'))} | "
        + " | ".join(_cell(row, key, form) for _, key, form in COLUMNS)
        + f" | {_status(row)} |"
        for row in rows
    ]
    return lines
