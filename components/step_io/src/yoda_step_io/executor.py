"""KFP executor input and ExecutorOutput.

KFP passes the executor input (``{{$}}``) to a container as JSON. When a step is given it, the
step writes an ExecutorOutput JSON to ``outputs.outputFile``: for every output artifact, its
``name`` and ``uri`` copied from the input plus the ``metadata`` the step computed. Vertex AI shows
that metadata in its console (metrics included), and KFP's local runner learns the step's outputs
from it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yoda_step_io.cli import StepError
from yoda_step_io.files import write_text_atomic

logger = logging.getLogger(__name__)

ExecutorInput = dict[str, Any]


def load_executor_input(raw: str | None) -> ExecutorInput | None:
    """Parse ``--executor-input`` (JSON text); ``None`` or empty means the step runs by hand."""
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StepError(f"--executor-input is not valid JSON ({error})") from error
    if not isinstance(parsed, dict) or "outputs" not in parsed:
        raise StepError("--executor-input has no 'outputs' section: is it KFP's {{$}} placeholder?")
    return parsed


def input_metadata(executor_input: ExecutorInput | None, name: str) -> dict[str, Any]:
    """The metadata an upstream step wrote for input artifact ``name`` (KFP passes it on in the
    executor input); empty when run by hand or when the input has none."""
    if executor_input is None:
        return {}
    artifacts = executor_input.get("inputs", {}).get("artifacts", {}).get(name, {})
    found = artifacts.get("artifacts", [{}])
    metadata = found[0].get("metadata", {}) if found else {}
    return dict(metadata) if isinstance(metadata, dict) else {}


def _clean_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Keep JSON-friendly values; non-finite numbers (NaN, inf) become strings, as JSON has none."""
    cleaned: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, float) and not math.isfinite(value):
            cleaned[key] = str(value)
        else:
            cleaned[key] = value
    return cleaned


def build_executor_output(
    executor_input: ExecutorInput,
    metadata: Mapping[str, Mapping[str, Any]],
    uris: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ExecutorOutput dict for ``executor_input`` with ``metadata`` per output artifact name.

    ``uris`` replaces an output's URI where the artifact lives elsewhere than KFP placed it (a
    model in Vertex AI Model Registry: its API URL, as Google's own components write it).

    Raises:
        StepError: ``metadata`` names an output that the executor input does not declare.
    """
    declared = executor_input["outputs"].get("artifacts", {})
    unknown = sorted(set(metadata) - set(declared))
    if unknown:
        raise StepError(f"metadata for undeclared outputs {unknown}; declared: {sorted(declared)}")
    artifacts: dict[str, Any] = {}
    for output_name, entry in declared.items():
        items = []
        for artifact in entry.get("artifacts", []):
            merged = {**artifact.get("metadata", {}), **metadata.get(output_name, {})}
            items.append(
                {
                    "name": artifact.get("name", ""),
                    "uri": (uris or {}).get(output_name, artifact.get("uri", "")),
                    "metadata": _clean_metadata(merged),
                }
            )
        artifacts[output_name] = {"artifacts": items}
    return {"artifacts": artifacts}


def write_executor_output(
    executor_input: ExecutorInput | None,
    metadata: Mapping[str, Mapping[str, Any]],
    uris: Mapping[str, str] | None = None,
) -> Path | None:
    """Write the ExecutorOutput JSON where KFP expects it; a no-op when run by hand.

    Returns:
        The path written, or ``None`` without an executor input.
    """
    if executor_input is None:
        return None
    output_file = Path(executor_input["outputs"]["outputFile"])
    document = build_executor_output(executor_input, metadata, uris)
    write_text_atomic(output_file, json.dumps(document, indent=2, sort_keys=True))
    logger.info("wrote executor output %s", output_file)
    return output_file
