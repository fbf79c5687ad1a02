"""The step contract: executor output, outputs written in place (all or nothing), error exits."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from yoda_step_io import (
    Metadata,
    Reported,
    Step,
    StepError,
    add_executor_input_flag,
    check_outputs,
    load_executor_input,
    outputs_in_place,
    run_step,
    step_parser,
)
from yoda_step_io.executor import build_executor_output, write_executor_output
from yoda_step_io.files import write_text_atomic
from yoda_step_io.values import BOOLEAN


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


def test_outputs_in_place_replace_a_rerun_and_keep_what_succeeded(tmp_path: Path) -> None:
    file_out, dir_out = tmp_path / "a.txt", tmp_path / "model"
    with outputs_in_place(file_out) as (file_path,):
        file_path.write_text("old")
    with outputs_in_place(file_out, dir_out) as (file_path, dir_path):
        assert (file_path, dir_path) == (file_out, dir_out)
        assert not file_out.exists(), "a rerun starts from a clean slate"
        file_path.write_text("new")
        dir_path.mkdir()
        (dir_path / "weights").write_text("w")
    assert file_out.read_text() == "new"
    assert (dir_out / "weights").read_text() == "w"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".a.txt.yoda-output",
        ".model.yoda-output",
        "a.txt",
        "model",
    ]


def test_outputs_in_place_leave_nothing_on_error(tmp_path: Path) -> None:
    first, second = tmp_path / "train.jsonl", tmp_path / "nested" / "model"
    with pytest.raises(RuntimeError), outputs_in_place(first, second) as (a, b):
        a.write_text("half")
        b.mkdir()
        (b / "weights").write_text("half")
        raise RuntimeError("boom")
    assert [p.name for p in tmp_path.rglob("*")] == ["nested"]


def test_outputs_in_place_refuse_a_missing_output(tmp_path: Path) -> None:
    with (
        pytest.raises(FileNotFoundError, match="did not write"),
        outputs_in_place(tmp_path / "x", tmp_path / "y") as (x, _),
    ):
        x.write_text("only one")
    assert list(tmp_path.iterdir()) == []


def test_write_text_atomic_leaves_only_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "executor_output.json"
    write_text_atomic(target, "{}")
    write_text_atomic(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    assert list(target.parent.iterdir()) == [target]


def test_check_outputs_probes_and_cleans_up(tmp_path: Path) -> None:
    check_outputs(tmp_path / "a" / "train", tmp_path / "a" / "test", tmp_path / "b" / "model")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]


def test_check_outputs_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.access(tmp_path / "ro", os.W_OK):
        pytest.skip("root ignores permission bits")
    with pytest.raises(
        StepError, match=r"cannot write to the output folder .*run the step's image as root"
    ):
        check_outputs(tmp_path / "ro" / "model")


def test_a_parent_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file where a folder should be")
    with pytest.raises(StepError, match=r"its parent .*afile is a file, not a folder$"):
        check_outputs(tmp_path / "afile" / "model")


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
def test_booleans_read_kfp_booleans(text: str, value: bool) -> None:
    assert BOOLEAN(text) is value


def test_booleans_refuse_other_words() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        BOOLEAN("maybe")


def cli_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-test-step", None)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--model-output", type=Path, required=True)
    parser.add_argument("--extra-output", type=Path)
    add_executor_input_flag(parser)
    return parser


def cli_args(tmp_path: Path, *more: str) -> list[str]:
    (tmp_path / "source.jsonl").write_text("{}")
    raw = json.dumps(executor_input(tmp_path))
    return ["--source", str(tmp_path / "source.jsonl"), "--model-output", str(tmp_path / "model"),
            "--executor-input", raw, *more]  # fmt: skip


def write_model(args: argparse.Namespace) -> None:
    with outputs_in_place(args.model_output):
        args.model_output.mkdir()
        (args.model_output / "weights").write_text("w")


def test_a_step_writes_the_outputs_and_the_executor_output(tmp_path: Path) -> None:
    def body(args: argparse.Namespace) -> Reported:
        assert args.extra_output is None, "an unset output is not checked"
        write_model(args)
        return Reported({"model": {"rank": 8}}, uris={"model": "https://registry/model"})

    Step(cli_parser, body, outputs=("model_output", "extra_output"), inputs=("source",)).main(
        cli_args(tmp_path)
    )
    written = json.loads((tmp_path / "task" / "executor_output.json").read_text())
    model = written["artifacts"]["model"]["artifacts"][0]
    assert model == {"name": "projects/p/model", "uri": "https://registry/model",
                     "metadata": {"rank": 8}}  # fmt: skip
    assert (tmp_path / "model" / "weights").read_text() == "w"


def test_a_step_turns_a_failure_into_one_line_exit_2_and_no_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def body(args: argparse.Namespace) -> Metadata:
        with outputs_in_place(args.model_output):
            args.model_output.mkdir()
            raise StepError("the data is\n  bad")

    with pytest.raises(SystemExit) as exit_info:
        Step(cli_parser, body, outputs=("model_output",)).main(cli_args(tmp_path))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: the data is bad"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.jsonl"], "no output, no mark"


@pytest.mark.parametrize(
    ("output", "message"),
    [("source.jsonl", "overlaps the input"), ("taken", "already exists and is not written by")],
)
def test_a_step_refuses_outputs_before_the_body_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str, message: str
) -> None:
    (tmp_path / "taken").write_text("someone else's")

    def body(args: argparse.Namespace) -> Metadata:
        raise AssertionError("the body ran")

    argv = cli_args(tmp_path, "--extra-output", str(tmp_path / output))
    with pytest.raises(SystemExit) as exit_info:
        Step(cli_parser, body, outputs=("model_output", "extra_output"), inputs=("source",)).main(
            argv
        )
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]
    assert (tmp_path / "taken").read_text() == "someone else's"
    assert not (tmp_path / "task").exists(), "no executor output"
