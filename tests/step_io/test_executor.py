"""The executor input a step reads and the executor output it writes (yoda_step_io.executor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp_documents import executor_input

from yoda_step_io import StepError, load_executor_input
from yoda_step_io.executor import build_executor_output, write_executor_output


def test_executor_output_copies_name_and_uri_and_merges_metadata(tmp_path: Path) -> None:
    output = build_executor_output(executor_input(tmp_path), {"metrics": {"loss": 0.5}})
    metrics = output["artifacts"]["metrics"]["artifacts"][0]
    assert metrics == {
        "name": "projects/p/metrics",
        "uri": "gs://b/m",
        "metadata": {"kept": 1, "loss": 0.5},
    }
    assert output["artifacts"]["model"]["artifacts"][0]["metadata"] == {}


def test_executor_output_turns_non_finite_numbers_into_strings(tmp_path: Path) -> None:
    output = build_executor_output(executor_input(tmp_path), {"metrics": {"loss": float("nan")}})
    assert output["artifacts"]["metrics"]["artifacts"][0]["metadata"]["loss"] == "nan"


def test_executor_output_refuses_undeclared_output(tmp_path: Path) -> None:
    with pytest.raises(StepError, match="undeclared outputs \\['predictions'\\]"):
        build_executor_output(executor_input(tmp_path), {"predictions": {"rows": 1}})


def test_write_executor_output_writes_the_output_file(tmp_path: Path) -> None:
    path = write_executor_output(executor_input(tmp_path), {"model": {"rank": 8}})
    assert path == tmp_path / "task" / "executor_output.json"
    written = json.loads(path.read_text())
    assert written["artifacts"]["model"]["artifacts"][0]["metadata"] == {"rank": 8}
    assert write_executor_output(None, {"model": {"rank": 8}}) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [("{not json", "not valid JSON"), ('{"inputs": {}}', "no 'outputs' section")],
)
def test_load_executor_input_refuses_bad_json(raw: str, message: str) -> None:
    with pytest.raises(StepError, match=message):
        load_executor_input(raw)


def test_load_executor_input_is_optional() -> None:
    assert load_executor_input(None) is None
    assert load_executor_input("") is None
