"""The data step's console script (``yoda_data_transformation/cli.py``): bad input is one error
line naming the value, exit status 2 and no output left behind; a good run reports its splits'
metadata to KFP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kfp_documents import outputs_input

from yoda_data_transformation.cli import main

HEADER = "sentence,translation,translation_extra\n"


def run_cli(tmp_path: Path, raw: str, *extra: str) -> int:
    """Run the step in-process; return its exit status, asserting it left no output."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    argv = ["--raw-data-uri", raw, "--train-output", str(out / "train"),
            "--test-output", str(out / "test"), *extra]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert list(out.iterdir()) == [], "a failed step must leave no (partial) output"
    return int(exit_info.value.code or 0)


@pytest.fixture
def expect_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """Run the step on ``raw`` and ``extra`` flags: exit 2, no output, one ``error:`` line (its
    last, no traceback); that line."""

    def check(raw: str, *extra: str) -> str:
        code = run_cli(tmp_path, raw, *extra)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        err_lines = [line for line in lines if line.startswith("error:")]
        assert code == 2 and "Traceback" not in err, err
        assert len(err_lines) == 1 and lines[-1] == err_lines[0], err
        return err_lines[0]

    return check


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("sentence,translation\nA b.,B a.\n", ("{raw}", "lacks column(s) translation_extra")),
        ("", ("{raw}", "is empty")),
        ("  \n\n", ("{raw}", "is empty")),
        (HEADER, ("error: --test-fraction 0.1:", " 0 usable row(s)")),
        (HEADER + "One.,Two.,Three.\n", ("error: --test-fraction 0.1:", " 1 usable row(s)")),
        (HEADER + ",,\n  ,x,\nA.,,\n", ("error: --test-fraction 0.1:", " 0 usable row(s)")),
        (HEADER + 'A."unclosed,b\n"c,d\n', ("{raw}", "not a valid CSV")),
        (HEADER + "A.,B.,C.\nD.,E.,F.,G.\n", ("{raw}", "not a valid CSV", "row 3 has 4 cells")),
    ],
    ids=[
        "missing-column",
        "empty",
        "whitespace-only",
        "header-only",
        "one-row",
        "blank-rows",
        "bad-csv",
        "extra-cell",
    ],
)
def test_bad_csv_content(
    write_csv: Callable[..., Path],
    expect_error: Callable[..., str],
    content: str,
    fragments: tuple[str, ...],
) -> None:
    """The raw file named (or, when no split can be made, the test fraction), and what is
    wrong with it."""
    raw = str(write_csv(content))
    line = expect_error(raw)
    for fragment in fragments:
        assert fragment.format(raw=raw) in line


def test_non_utf8_bytes(write_csv: Callable[..., Path], expect_error: Callable[..., str]) -> None:
    raw = (HEADER + "Caf\xe9 time.,x,y\n").encode("latin-1")
    offset = len(HEADER) + len("Caf")
    path = str(write_csv(raw))
    line = expect_error(path)
    assert path in line and "not UTF-8" in line and f"offset {offset})" in line


def test_too_few_rows_names_the_minimum(
    write_csv: Callable[..., Path],
    make_rows: Callable[[int], str],
    expect_error: Callable[..., str],
) -> None:
    """4 rows: the fractions that leave each split a row, 0.5/4 up to below 3.5/4."""
    line = expect_error(str(write_csv(make_rows(4))), "--test-fraction", "0.1")
    assert line.startswith("error: --test-fraction 0.1:")
    assert " 4 usable row(s)" in line and "0.125" in line and "0.875" in line


def test_a_tiny_test_fraction_names_the_counts_in_one_line(
    write_csv: Callable[..., Path],
    make_rows: Callable[[int], str],
    expect_error: Callable[..., str],
) -> None:
    """Inside the bounds, but no row for the test split: one line, not a StopIteration."""
    line = expect_error(str(write_csv(make_rows(700))), "--test-fraction", "0.00001")
    assert line.startswith("error: --test-fraction 1e-05:")
    assert " 700 usable row(s)" in line and " 0 test " in line and " 700 train " in line


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("/no/such/file.csv", "no such file"),
        ("s3://bucket/file.csv", "unsupported scheme s3://"),
        ("gs://", "expected gs://BUCKET/PATH/FILE"),
        ("gs://bucket-only", "expected gs://BUCKET/PATH/FILE"),
    ],
)
def test_unreadable_uri(expect_error: Callable[..., str], uri: str, fragment: str) -> None:
    line = expect_error(uri)
    assert line.startswith(f"error: --raw-data-uri {uri!r}:") and fragment in line


def test_hf_uri_without_network(
    expect_error: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    uri = "hf://datasets/dvgodoy/yoda_sentences/sentences.csv"
    line = expect_error(uri)
    assert f"cannot read {uri}" in line


@pytest.mark.parametrize(
    ("flags", "named", "fragment"),
    [
        (("--target-column", "sentence"), "--target-column 'sentence'",
         "translation_extra, translation"),
        (("--test-fraction", "0"), "--test-fraction '0'", "> 0 and < 1"),
        (("--test-fraction", "1.5"), "--test-fraction '1.5'", "> 0 and < 1"),
        (("--seed", "-5"), "--seed '-5'", "from 0 to 4294967295"),
        # a bad --executor-input does not hide the missing raw file
        (("--executor-input", "{oops"), "--raw-data-uri '/no/such/file.csv'", "no such file"),
    ],
)  # fmt: skip
def test_bad_parameters_fail_before_reading(
    expect_error: Callable[..., str], flags: tuple[str, ...], named: str, fragment: str
) -> None:
    """The flag and its value named, with what it may be."""
    # the raw file does not exist: the values' checks come first
    line = expect_error("/no/such/file.csv", *flags)
    assert line.startswith(f"error: {named}:") and fragment in line


def test_console_script_exit_status_and_single_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    process = subprocess.run(
        [sys.executable, "-m", "yoda_data_transformation",
         "--raw-data-uri", str(missing),
         "--train-output", str(tmp_path / "train"), "--test-output", str(tmp_path / "test")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert process.returncode == 2
    (line,) = process.stderr.strip().splitlines()
    assert line.startswith(f"error: --raw-data-uri '{missing}':") and "no such file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_writes_executor_output_metadata(sample_csv: Path, tmp_path: Path) -> None:
    output_file = tmp_path / "task" / "executor_output.json"
    executor_input = outputs_input(output_file, "train", "test")
    main([
        "--raw-data-uri", str(sample_csv),
        "--train-output", str(tmp_path / "train"),
        "--test-output", str(tmp_path / "test"),
        "--target-column", "translation",
        "--test-fraction", "0.25",
        "--seed", "3",
        "--executor-input", executor_input,
    ])  # fmt: skip
    artifacts = json.loads(output_file.read_text())["artifacts"]
    train_meta = artifacts["train"]["artifacts"][0]["metadata"]
    test_meta = artifacts["test"]["artifacts"][0]["metadata"]
    assert artifacts["train"]["artifacts"][0]["uri"] == "gs://b/train"
    assert (train_meta["rows"], test_meta["rows"]) == (36, 12)
    assert train_meta["target_column"] == "translation"
    assert test_meta["seed"] == 3 and test_meta["test_fraction"] == 0.25
    test_rows = (tmp_path / "test").read_text(encoding="utf-8").splitlines()
    assert len(test_rows) == 12
