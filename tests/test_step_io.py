"""The step contract: executor output, staged (all-or-nothing) outputs, error exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yoda_step_io import StepError, load_executor_input, parse_bool, run_step, staged_outputs
from yoda_step_io.executor import build_executor_output, write_executor_output


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


def test_staged_outputs_publish_all_on_success(tmp_path: Path) -> None:
    file_out, dir_out = tmp_path / "a.txt", tmp_path / "model"
    file_out.write_text("old")
    with staged_outputs(file_out, dir_out) as (file_stage, dir_stage):
        file_stage.write_text("new")
        dir_stage.mkdir()
        (dir_stage / "weights").write_text("w")
        assert not dir_out.exists()
    assert file_out.read_text() == "new"
    assert (dir_out / "weights").read_text() == "w"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "model"]


def test_staged_outputs_leave_nothing_on_error(tmp_path: Path) -> None:
    first, second = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    with pytest.raises(RuntimeError), staged_outputs(first, second) as (stage_a, _):
        stage_a.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staged_outputs_refuse_a_missing_output(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), staged_outputs(tmp_path / "x") as _:
        pass
    assert list(tmp_path.iterdir()) == []


def test_run_step_turns_step_error_into_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def step() -> None:
        raise StepError("bad thing\n  on two lines")

    with pytest.raises(SystemExit) as exit_info:
        run_step(step)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: bad thing on two lines\n"


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("True", True), ("0", False), ("no", False)]
)
def test_parse_bool_reads_kfp_booleans(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_parse_bool_refuses_other_words() -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        parse_bool("maybe")
