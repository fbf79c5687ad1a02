"""`yoda-report` (yoda_evaluation.report_cli), the report step: the HTML and Markdown artifacts
from the evaluation's outputs, and missing or unreadable inputs refused in one line."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from yoda_evaluation.evaluate import evaluate_predictions
from yoda_evaluation.report import load_report_inputs
from yoda_evaluation.report_cli import main as report_main
from yoda_evaluation.report_html import render_html

ROWS = [
    ["user_input", "reference", "extracted_response"],
    ["The Force is strong.", "Strong, the Force is.", "Strong, the Force is."],
    ["I like tea.", "Tea, I like.", ""],
]


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_report_cli_writes_both_artifacts_or_says_what_is_missing(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    tuned = write(tmp_path / "tuned.csv", ROWS)
    evaluate_predictions(tuned, tmp_path / "results.csv", tmp_path / "metrics", ["rouge_l"])
    report_main(["--evaluation-results", str(tmp_path / "results.csv"),
                 "--evaluation-metrics", str(tmp_path / "metrics"),
                 "--html-output", str(tmp_path / "out" / "html"),
                 "--markdown-output", str(tmp_path / "out" / "markdown")])  # fmt: skip
    assert "<svg" in (tmp_path / "out" / "html").read_text()
    assert (tmp_path / "out" / "markdown").read_text().startswith("# Yoda fine-tuning report")
    inputs = load_report_inputs(tmp_path / "results.csv", tmp_path / "metrics", None, None)
    assert inputs.log_history == [] and "No training log" in render_html(inputs)
    line = one_error_line(report_main, "--evaluation-results", str(tmp_path / "nope.csv"),
                          "--evaluation-metrics", str(tmp_path / "metrics"),
                          "--html-output", str(tmp_path / "x" / "html"),
                          "--markdown-output", str(tmp_path / "x" / "md"))  # fmt: skip
    assert str(tmp_path / "nope.csv") in line and "not exist" in line
    assert not any((tmp_path / "x").iterdir())


def test_the_report_on_non_utf8_results(tmp_path: Path, one_error_line: Callable[..., str]) -> None:
    (tmp_path / "results.csv").write_bytes(
        b"user_input,reference,response,rouge_l\ncaf\xe9,a,b,1\n"
    )
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "metrics.json").write_bytes(b'{"rouge_l_mean": 1.0}')
    argv = ["--evaluation-results", str(tmp_path / "results.csv"),
            "--evaluation-metrics", str(tmp_path / "metrics"),
            "--html-output", str(tmp_path / "r.html"),
            "--markdown-output", str(tmp_path / "r.md")]  # fmt: skip
    line = one_error_line(report_main, *argv)
    assert str(tmp_path / "results.csv") in line and "not UTF-8" in line
    (tmp_path / "results.csv").write_text("user_input,reference,response,rouge_l\na,a,b,1\n")
    (tmp_path / "metrics" / "metrics.json").write_bytes(b'{"rouge_l_mean": "caf\xe9"}')
    again = one_error_line(report_main, *argv)
    assert str(tmp_path / "metrics" / "metrics.json") in again and "not UTF-8" in again
