"""Bad input to the data step: one clear error line, exit status 2, no output left behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

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
    def check(raw: str, *extra: str) -> str:
        code = run_cli(tmp_path, raw, *extra)
        err_lines = [
            line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")
        ]
        assert code == 2
        assert len(err_lines) == 1
        return err_lines[0]

    return check


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "sentence,translation\nA b.,B a.\n",
            "lacks column(s) translation_extra; found: sentence, translation",
        ),
        ("", "is empty"),
        ("  \n\n", "is empty"),
        (HEADER, "of 0 usable row(s) it leaves 0 test"),
        (HEADER + "One.,Two.,Three.\n", "of 1 usable row(s) it leaves 0 test"),
        (HEADER + ",,\n  ,x,\nA.,,\n", "of 0 usable row(s) it leaves 0 test"),
        (HEADER + 'A."unclosed,b\n"c,d\n', "not a valid CSV"),
        (HEADER + "A.,B.,C.\nD.,E.,F.,G.\n", "not a valid CSV: row 3 has 4 cells, the header 3"),
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
    write_csv: Callable[..., Path], expect_error: Callable[..., str], content: str, message: str
) -> None:
    assert message in expect_error(str(write_csv(content)))


def test_non_utf8_bytes(write_csv: Callable[..., Path], expect_error: Callable[..., str]) -> None:
    raw = (HEADER + "Caf\xe9 time.,x,y\n").encode("latin-1")
    offset = len(HEADER) + len("Caf")
    assert f"is not UTF-8 (invalid byte at offset {offset})" in expect_error(str(write_csv(raw)))


def test_too_few_rows_names_the_minimum(
    write_csv: Callable[..., Path],
    make_rows: Callable[[int], str],
    expect_error: Callable[..., str],
) -> None:
    message = expect_error(str(write_csv(make_rows(4))), "--test-fraction", "0.1")
    assert message.startswith("error: --test-fraction 0.1: of 4 usable row(s) it leaves 0 test")
    assert "with 4 rows, a test_fraction from 0.125 to below 0.875" in message


def test_a_tiny_test_fraction_names_the_counts_in_one_line(
    write_csv: Callable[..., Path],
    make_rows: Callable[[int], str],
    expect_error: Callable[..., str],
) -> None:
    """Inside the bounds, but no row for the test split: one line, not a StopIteration."""
    message = expect_error(str(write_csv(make_rows(700))), "--test-fraction", "0.00001")
    assert "of 700 usable row(s) it leaves 0 test and 700 train rows" in message


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/no/such/file.csv", "no such file"),
        ("s3://bucket/file.csv", "unsupported scheme s3://"),
        ("gs://", "expected gs://BUCKET/PATH/FILE"),
        ("gs://bucket-only", "expected gs://BUCKET/PATH/FILE"),
    ],
)
def test_unreadable_uri(expect_error: Callable[..., str], uri: str, message: str) -> None:
    assert message in expect_error(uri)


def test_hf_uri_without_network(
    expect_error: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = expect_error("hf://datasets/dvgodoy/yoda_sentences/sentences.csv")
    assert "cannot read hf://datasets/dvgodoy/yoda_sentences/sentences.csv" in message


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--target-column", "sentence"), "--target-column 'sentence': expected one of"),
        (("--test-fraction", "0"), "--test-fraction '0': expected a number > 0 and < 1"),
        (("--test-fraction", "1.5"), "--test-fraction '1.5': expected a number > 0 and < 1"),
        (("--seed", "-5"), "--seed '-5': expected a whole number from 0 to 4294967295"),
        (("--executor-input", "{oops"), "no such file"),
    ],
)
def test_bad_parameters_fail_before_reading(
    expect_error: Callable[..., str], flags: tuple[str, ...], message: str
) -> None:
    # the raw file does not exist: the values' checks come first
    assert message in expect_error("/no/such/file.csv", *flags)


def test_console_script_exit_status_and_single_error_line(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "yoda_data_transformation",
         "--raw-data-uri", str(tmp_path / "missing.csv"),
         "--train-output", str(tmp_path / "train"), "--test-output", str(tmp_path / "test")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        f"error: --raw-data-uri '{tmp_path / 'missing.csv'}': no such file"
    ]
