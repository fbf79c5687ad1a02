"""What steps hand each other, named once: the files inside artifacts, the CSV columns, the
output names, and the one reader of the evaluation's metrics.

Steps and the pipeline import these names instead of spelling them out; docs/contract.md
describes the artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path

from yoda_step_io.cli import StepError
from yoda_step_io.gcs import read_location

#: The predictions CSVs (fine-tuned and base model): exactly these columns, in this order.
PREDICTION_COLUMNS = ("user_input", "reference", "extracted_response")
#: The evaluation results CSV's text columns; every other column is a metric's score.
RESULT_TEXT_COLUMNS = ("user_input", "reference", "response", "base_response")

#: A Metrics artifact's numbers (the fine-tuning's and the evaluation's).
METRICS_FILE = "metrics.json"
#: The trainer's log (losses by step), in the fine-tuning's Metrics artifact.
LOG_HISTORY_FILE = "log_history.json"
#: In the Model artifact: the training's metrics, and its hyper-parameters with the base
#: model's name and revision.
TRAINING_METRICS_FILE = "training_metrics.json"
HYPERPARAMETERS_FILE = "hyperparameters.json"
#: In the champion's Model artifact, the recipe it was trained with (a sweep's overrides, JSON);
#: in its Metrics artifact, the sweep's table (every recipe, its outcome and validation curve).
RECIPE_FILE = "recipe.json"
SWEEP_FILE = "sweep.json"
#: The LoRA adapter in the Model artifact: its config, and its weights (either file).
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
#: The gate's decision and its reasons, in its ``decision`` Metrics artifact.
DECISION_FILE = "decision.json"

#: Output names: the components' output parameters, the keys of each step's ExecutorOutput.
MODEL = "model"
METRICS = "metrics"
EVALUATION_RESULTS = "evaluation_results"
HTML = "html"
DECISION = "decision"
VERTEX_MODEL = "vertex_model"


class MissingMetricsError(StepError):
    """The Metrics artifact holds no ``metrics.json`` (a run that did not get that far)."""


def _problem(path: str, problem: str) -> str:
    return (
        f"the evaluation's metrics {path} {problem}: expected the evaluation step's "
        f"{METRICS_FILE}, a JSON object of numbers"
    )


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _read_bytes(path: str) -> bytes:
    try:
        return read_location(path)
    except FileNotFoundError as error:
        raise MissingMetricsError(_problem(path, "does not exist")) from error
    except OSError as error:
        raise StepError(_problem(path, f"cannot be read ({error.strerror})")) from error


def read_metrics(folder: str | Path) -> dict[str, float]:
    """The evaluation's aggregates: ``metrics.json`` of its Metrics artifact ``folder``, on disk
    or ``gs://``.

    Raises:
        MissingMetricsError: there is no such file.
        StepError: it cannot be read, is not UTF-8 JSON, or not an object of numbers; one line
            naming the file.
    """
    location = str(folder)
    if location.startswith("gs://"):
        path = f"{location.rstrip('/')}/{METRICS_FILE}"
    else:
        path = str(Path(location) / METRICS_FILE)
    data = _read_bytes(path)
    try:
        metrics = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise StepError(_problem(path, f"is not UTF-8 text (byte {error.start})")) from error
    except json.JSONDecodeError as error:
        raise StepError(_problem(path, f"is not valid JSON ({error})")) from error
    if not isinstance(metrics, dict):
        raise StepError(_problem(path, f"holds {_shown(metrics)}, not a JSON object"))
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StepError(_problem(path, f"holds {key!r}: {_shown(value)}, not a number"))
    return metrics
