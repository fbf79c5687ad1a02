"""`yoda-pipeline report`: a finished run's text summary, its aggregate scores and its best and
worst samples (yoda_pipeline.report)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_pipeline.cli import main
from yoda_pipeline.report import format_report, read_results
from yoda_step_io import StepError

COLUMNS = ("user_input", "reference", "response", "rouge_l", "bleu")
ROWS = [
    dict(zip(COLUMNS, values, strict=True))
    for values in [
        ("a", "A, it is.", "A, it is.", "1.0", "0.9"),
        ("b", "B, it is.", "B\nis", "0.5", "0.1"),
        ("c", "C, it is.", "", "0.0", "0.0"),
    ]
]


def results_csv() -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ROWS[0]))
    writer.writeheader()
    writer.writerows(ROWS)
    return buffer.getvalue()


def test_format_report() -> None:
    text = format_report(ROWS, by="rouge_l", top=1)
    lines = text.splitlines()
    assert lines[0] == "3 samples"
    assert lines[2].split() == ["rouge_l", "0.500", "0.500", "0.000", "1.000"]
    assert lines[3].split() == ["bleu", "0.333", "0.100", "0.000", "0.900"]
    best = text.index("Best 1 by rouge_l:")
    worst = text.index("Worst 1 by rouge_l:")
    assert "[1.000] a" in text[best:worst] and "[0.000] c" in text[worst:]
    assert "answered: B\\nis" not in text  # only the best and the worst are shown
    assert format_report(ROWS, by="bleu", top=3).count("answered: B\\nis") == 2


def test_unknown_ranking_metric() -> None:
    with pytest.raises(StepError) as error:
        format_report(ROWS, by="meteor", top=3)
    assert "'meteor'" in str(error.value) and "rouge_l, bleu" in str(error.value)  # the known


def test_report_from_gcs(gcs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    if not gcs.bucket("yoda-eval").exists():
        gcs.create_bucket("yoda-eval")
    gcs.bucket("yoda-eval").blob(
        "job/evaluation-component_1/evaluation_results"
    ).upload_from_string(results_csv())
    uri = "gs://yoda-eval/job/evaluation-component_1/evaluation_results"
    assert read_results(uri) == ROWS
    main(["report", uri, "--top", "1"])
    assert capsys.readouterr().out.startswith("3 samples\n")
    with pytest.raises(StepError, match="no such bucket or object"):
        read_results("gs://yoda-eval/job/nothing")


def test_report_errors_are_one_line(tmp_path: Path, one_error_line: Callable[..., str]) -> None:
    (tmp_path / "run-1").mkdir()
    line = one_error_line(main, "report", str(tmp_path / "run-1"))
    assert str(tmp_path / "run-1") in line and "no evaluation results" in line
