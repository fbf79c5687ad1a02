"""The step skeleton: flags parsed and checked, outputs written in place with the executor
output, a failure as one line and exit 2 (yoda_step_io.cli)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kfp_documents import executor_input

from yoda_step_io import (
    Metadata,
    Reported,
    Step,
    StepError,
    add_executor_input_flag,
    outputs_in_place,
    run_step,
    step_parser,
)


def test_run_step_turns_step_error_into_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def step() -> None:
        raise StepError("bad thing\n  on two lines")

    with pytest.raises(SystemExit) as exit_info:
        run_step(step)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: bad thing on two lines\n"


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
    ("output", "phrase"), [("source.jsonl", "overlaps the input"), ("taken", "already exists")]
)
def test_a_step_refuses_outputs_before_the_body_runs(
    tmp_path: Path, one_error_line: Callable[..., str], output: str, phrase: str
) -> None:
    (tmp_path / "taken").write_text("someone else's")

    def body(args: argparse.Namespace) -> Metadata:
        raise AssertionError("the body ran")

    argv = cli_args(tmp_path, "--extra-output", str(tmp_path / output))
    step = Step(cli_parser, body, outputs=("model_output", "extra_output"), inputs=("source",))
    line = one_error_line(step.main, *argv)
    assert str(tmp_path / output) in line and phrase in line
    assert (tmp_path / "taken").read_text() == "someone else's"
    assert not (tmp_path / "task").exists(), "no executor output"
