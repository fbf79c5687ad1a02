"""``yoda-champion``: the sweep's champion, by validation loss, out of its recipes' outcomes.

The fine-tuning task runs once per recipe (``dsl.ParallelFor``); each says how it went in a small
JSON outcome (an output parameter, gathered here with ``dsl.Collected``): finished, with its
losses and where its Model and Metrics artifacts are, or failed, with the reason. The champion
is the finished recipe with the lowest validation answer loss (the same measure for every
recipe: ``yoda_fine_tuning.validation``); the test split is never looked at. Its adapter and
metrics are copied into this step's own Model and Metrics outputs, which inference, the report,
the gate and registration take; the Metrics output also holds the sweep's table
(``sweep.json``), each recipe's validation curve included. By hand::

    yoda-champion --sweep '[{}]' --outcomes '["{...}"]' --model-output m --metrics-output x
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from yoda_step_io import (
    BadValueError,
    Metadata,
    Step,
    StepError,
    add_executor_input_flag,
    step_parser,
)
from yoda_step_io.contract import LOG_HISTORY_FILE, METRICS_FILE, RECIPE_FILE, SWEEP_FILE
from yoda_step_io.files import outputs_in_place
from yoda_step_io.models import gcs_mount_path
from yoda_step_io.values import Allowed, integer, json_object

logger = logging.getLogger(__name__)


def _sweep_problem(recipes: list[Any]) -> str | None:
    if not recipes or not all(isinstance(recipe, dict) for recipe in recipes):
        return "expected a JSON list of objects, one recipe each ([{}]: one, the parameters')"
    texts = [json.dumps(recipe, sort_keys=True) for recipe in recipes]
    twice = sorted({text for text in texts if texts.count(text) > 1})
    return f"the recipe {twice[0]} is given twice" if twice else None


def _outcomes_problem(outcomes: list[Any]) -> str | None:
    fine = all(isinstance(each, dict | str) for each in outcomes)
    return None if fine else "expected a JSON list of the recipes' outcomes"


SWEEP = Allowed(list, "a JSON list of recipes, each an object of fine-tuning hyper-parameters",
                rule=_sweep_problem, convert=json_object)  # fmt: skip
OUTCOMES = Allowed(list, "a JSON list of outcomes", rule=_outcomes_problem, convert=json.loads)
MAX_RECIPES = integer(1, 64)


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-champion", __doc__)
    parser.add_argument("--sweep", type=SWEEP, required=True, help=SWEEP.words)
    parser.add_argument("--max-recipes", type=MAX_RECIPES, default=8, help=MAX_RECIPES.words)
    parser.add_argument("--outcomes", type=OUTCOMES, default="[]", help=OUTCOMES.words)
    parser.add_argument("--model-output", type=Path, required=True, help="the champion's Model")
    parser.add_argument("--metrics-output", type=Path, required=True, help="its Metrics")
    add_executor_input_flag(parser)
    return parser


def check(args: argparse.Namespace, here: bool) -> None:
    """No more recipes than ``--max-recipes`` (each costs a fine-tuning task: a GPU on
    Vertex AI)."""
    if len(args.sweep) > args.max_recipes:
        raise BadValueError(
            "--sweep", json.dumps(args.sweep), f"{len(args.sweep)} recipes: at most "
            f"{args.max_recipes} (--max-recipes)",
        )  # fmt: skip


def local(uri: str) -> Path:
    """An artifact's folder: a ``gs://`` one through Vertex AI's ``/gcs`` mount."""
    return gcs_mount_path(uri) if uri.startswith("gs://") else Path(uri)


def curve(metrics_uri: str) -> list[list[float]]:
    """A recipe's validation loss by step (its Trainer's log), [] if it cannot be read."""
    try:
        history = json.loads((local(metrics_uri) / LOG_HISTORY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [[float(e["step"]), float(e["eval_loss"])] for e in history if "eval_loss" in e]


def table(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep's rows, in recipe order, the champion marked: the finished recipe with the
    lowest validation answer loss (the first of equals).

    Raises:
        StepError: no recipe finished; the line names each one's reason.
    """
    rows = [{**outcome, "number": number, "champion": False} for number, outcome in
            enumerate(outcomes, start=1)]  # fmt: skip
    finished = [row for row in rows if row.get("status") == "finished" and
                math.isfinite(float(row.get("validation_answer_loss") or math.nan))]  # fmt: skip
    if not finished:
        reasons = "; ".join(
            f"recipe {row['number']} {json.dumps(row.get('recipe'))}: "
            f"{row.get('reason', 'no validation loss')}"
            for row in rows
        )
        raise StepError(f"no recipe of the sweep finished: {reasons or 'no recipe ran'}")
    min(finished, key=lambda row: float(row["validation_answer_loss"]))["champion"] = True
    for row in rows:
        row["curve"] = curve(row["metrics_uri"]) if row.get("status") == "finished" else []
    return rows


def body(args: argparse.Namespace) -> Metadata:
    """Pick the champion; copy its Model and Metrics; the sweep's table beside its metrics."""
    outcomes = [json.loads(each) if isinstance(each, str) else each for each in args.outcomes]
    rows = table(outcomes)
    champion = next(row for row in rows if row["champion"])
    logger.info("the champion of %d recipe(s): recipe %d %s, validation answer loss %.4f",
                len(rows), champion["number"], json.dumps(champion["recipe"]),
                champion["validation_answer_loss"])  # fmt: skip
    with outputs_in_place(args.model_output, args.metrics_output):
        shutil.copytree(local(champion["model_uri"]), args.model_output)
        shutil.copytree(local(champion["metrics_uri"]), args.metrics_output)
        (args.model_output / RECIPE_FILE).write_text(json.dumps(champion["recipe"]))
        (args.metrics_output / SWEEP_FILE).write_text(json.dumps(rows, indent=1))
    metrics = json.loads((args.metrics_output / METRICS_FILE).read_text(encoding="utf-8"))
    counts = {"recipes": len(rows), "finished": sum(r.get("status") == "finished" for r in rows),
              "champion": champion["number"]}  # fmt: skip
    return {"model": {**counts, "recipe": json.dumps(champion["recipe"])},
            "metrics": {**metrics, **counts}}  # fmt: skip


STEP = Step(build_parser, body, check, outputs=("model_output", "metrics_output"))
main = STEP.main

if __name__ == "__main__":
    main()
