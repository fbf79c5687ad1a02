"""KFP's documents as a step receives them, for the tests of the step contract."""

from __future__ import annotations

import json
from pathlib import Path


def executor_input(tmp_path: Path) -> dict[str, object]:
    return {
        "inputs": {"parameterValues": {"seed": 1}},
        "outputs": {
            "artifacts": {
                "metrics": {"artifacts": [{"name": "projects/p/metrics", "uri": "gs://b/m",
                                           "metadata": {"kept": 1}}]},
                "model": {"artifacts": [{"name": "projects/p/model", "uri": "gs://b/model"}]},
            },
            "outputFile": str(tmp_path / "task" / "executor_output.json"),
        },
    }  # fmt: skip


def outputs_input(output_file: Path, *names: str) -> str:
    """``--executor-input`` for a step whose output artifacts ``names`` sit under gs://b/, with
    KFP's output file ``output_file``."""
    artifacts = {name: {"artifacts": [{"name": name, "uri": f"gs://b/{name}"}]} for name in names}
    return json.dumps({"outputs": {"artifacts": artifacts, "outputFile": str(output_file)}})
