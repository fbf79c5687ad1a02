"""Evaluation: known scores, aggregation, robustness to real predictions, bad inputs, metadata."""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from yoda_evaluation.cli import main
from yoda_evaluation.evaluate import evaluate_predictions
from yoda_evaluation.metrics import (
    METRIC_LIST,
    aggregate_metrics,
    compute_metrics,
    metric_definitions,
)
from yoda_step_io import BadValueError
from yoda_step_io.scores import METRIC_NAMES

HEADER = ["user_input", "reference", "extracted_response"]


@pytest.fixture(scope="module")
def all_metrics() -> list[object]:
    return metric_definitions(METRIC_NAMES)


def test_identical_answers_score_one(all_metrics: list[object]) -> None:
    text = "Strong in you, the Force is. Yes, hrrrm."
    scores = compute_metrics("The Force is strong in you.", text, text, all_metrics)  # type: ignore[arg-type]
    assert set(scores) == set(METRIC_NAMES)
    assert all(value == pytest.approx(1.0) for value in scores.values()), scores


def test_disjoint_answers_score_zero(all_metrics: list[object]) -> None:
    scores = compute_metrics("q", "green apples fall", "Blue skies, we see.", all_metrics)  # type: ignore[arg-type]
    for name in ("rouge_l", "rouge_1", "bleu", "exact_match", "string_present"):
        assert scores[name] == 0.0, name
    assert 0.0 <= scores["levenshtein_similarity"] < 0.5


def test_rouge_l_by_hand() -> None:
    # reference: strong in you the force is / response: the force is strong in you
    # longest common subsequence: 3 tokens ("the force is") -> P = R = 3/6 -> F1 = 0.5
    (rouge_l,) = metric_definitions(["rouge_l"])
    scores = compute_metrics(
        "The Force is strong in you.", "The Force is strong in you.",
        "Strong in you, the Force is.", [rouge_l],
    )  # fmt: skip
    assert scores == {"rouge_l": pytest.approx(0.5)}


def test_string_present_and_exact_match() -> None:
    metrics = metric_definitions(["exact_match", "string_present"])
    reference = "On the smooth planks, the birch canoe slid."
    scores = compute_metrics("q", reference + " Yes, hrrrm.", reference, metrics)
    assert scores == {"exact_match": 0.0, "string_present": 1.0}


def test_aggregate_metrics() -> None:
    frame = pd.DataFrame(
        {"user_input": ["a", "b", "c", "d"], "rouge_l": [0.0, 0.5, 0.5, 1.0], "bleu": [1.0] * 4}
    )
    aggregates = aggregate_metrics(frame)
    assert aggregates["samples"] == 4
    assert aggregates["rouge_l_mean"] == 0.5 and aggregates["rouge_l_median"] == 0.5
    assert aggregates["rouge_l_std"] == pytest.approx(math.sqrt(0.125))
    assert (aggregates["rouge_l_min"], aggregates["rouge_l_max"]) == (0.0, 1.0)
    assert aggregates["bleu_std"] == 0.0
    assert not any(key.startswith("user_input") for key in aggregates)


def test_metric_selection() -> None:
    assert METRIC_LIST("bleu, rouge_l,bleu") == ("bleu", "rouge_l")
    assert METRIC_LIST("") == ()
    assert len(metric_definitions(())) == len(METRIC_NAMES)
    with pytest.raises(argparse.ArgumentTypeError, match="meteor: expected"):
        METRIC_LIST("rouge_l,meteor")
    with pytest.raises(BadValueError, match="--metrics 'meteor'"):
        metric_definitions(["meteor"])


def write_predictions(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_real_world_predictions(tmp_path: Path) -> None:
    rows = [
        ["The Force is strong.", "Strong, the Force is.", "Strong, the Force is."],
        ["Empty answer.", "Answer, I have.", ""],
        ["NA", "NA, it is.", "NaN"],
        ["Grüße aus Köln.", "Aus Köln, Grüße.", "Aus Köln, Grüße 🙂."],
        ["Long one.", "Short, it is.", "and on " * 3000],
        ["Multi-line.", "Two lines, it has.", "Two lines,\nit has."],
    ]
    predictions = write_predictions(tmp_path / "predictions.csv", rows)
    result = evaluate_predictions(
        predictions, tmp_path / "results.csv", tmp_path / "metrics", METRIC_NAMES
    )
    results = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert list(results.columns) == ["user_input", "reference", "response", *METRIC_NAMES]
    assert len(results) == len(rows)
    assert results["response"].tolist()[:4] == [
        "Strong, the Force is.",
        "",
        "NaN",
        "Aus Köln, Grüße 🙂.",
    ]
    assert results.loc[0, "exact_match"] == 1.0 and results.loc[1, "rouge_l"] == 0.0
    scores = results[list(METRIC_NAMES)].to_numpy(dtype=float)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert result.aggregates["samples"] == len(rows)
    assert all(math.isfinite(v) for v in result.aggregates.values())
    on_disk = json.loads((tmp_path / "metrics" / "metrics.json").read_text())
    assert on_disk == pytest.approx(result.aggregates)
    # no base model's answers here: the echo baseline and the degenerate counts only
    assert on_disk["empty_answers"] == 1 and on_disk["repeated_answers"] == 0  # two words alternate
    assert "echo_rouge_l_mean" in on_disk and "base_rouge_l_mean" not in on_disk


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"user_input,reference\nq,r\n", "lacks column(s) extracted_response"),
        (b"user_input,reference,extracted_response\n", "has a header but no rows"),
        (b"user_input,reference,extracted_response\nq,\xe9t\xe9,x\n", "is not UTF-8"),
    ],
    ids=["empty", "missing-column", "header-only", "not-utf8"],
)
def test_bad_predictions_fail_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    predictions = tmp_path / "predictions.csv"
    predictions.write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["--predictions", str(predictions), "--results-output", str(out / "results.csv"),
              "--metrics-output", str(out / "metrics")])  # fmt: skip
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not out.exists() or list(out.iterdir()) == []


def test_unknown_metric_fails_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--predictions", str(tmp_path / "missing.csv"), "--results-output",
              str(tmp_path / "r.csv"), "--metrics-output", str(tmp_path / "m"),
              "--metrics", "rouge_l,bertscore"])  # fmt: skip
    assert exit_info.value.code == 2
    assert "--metrics 'rouge_l,bertscore': bertscore: expected" in capsys.readouterr().err


def test_cli_reports_aggregates_to_kfp(tmp_path: Path) -> None:
    predictions = write_predictions(
        tmp_path / "p.csv", [["q1", "Strong, it is.", "Strong, it is."], ["q2", "Yes.", "No."]]
    )
    output_file = tmp_path / "executor_output.json"
    executor_input = {"outputs": {"artifacts": {
        "metrics": {"artifacts": [{"name": "metrics", "uri": "gs://b/metrics"}]},
        "evaluation_results": {"artifacts": [{"name": "evaluation_results", "uri": "gs://b/r"}]},
    }, "outputFile": str(output_file)}}  # fmt: skip
    main(["--predictions", str(predictions), "--results-output", str(tmp_path / "r.csv"),
          "--metrics-output", str(tmp_path / "m"), "--metrics", "rouge_l,exact_match",
          "--executor-input", json.dumps(executor_input)])  # fmt: skip
    artifacts = json.loads(output_file.read_text())["artifacts"]
    metrics = artifacts["metrics"]["artifacts"][0]["metadata"]
    assert metrics["samples"] == 2 and metrics["exact_match_mean"] == 0.5
    assert metrics["rouge_l_max"] == 1.0
    assert all(isinstance(v, float) for v in metrics.values())
    results = artifacts["evaluation_results"]["artifacts"][0]["metadata"]
    assert results["rows"] == 2 and results["metrics"] == "rouge_l,exact_match"
    header = (tmp_path / "r.csv").read_text().splitlines()[0]
    assert header == "user_input,reference,response,rouge_l,exact_match"


def test_an_answer_too_long_to_score_is_refused_at_once(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    from yoda_evaluation.cli import main
    from yoda_evaluation.evaluate import MAX_TEXT_CHARS

    long = "yes " * (MAX_TEXT_CHARS // 4 + 1)
    (tmp_path / "p.csv").write_text(
        f"user_input,reference,extracted_response\nhi,hi,hi\nhi,hi,{long}\n"
    )
    line = one_error_line(main, "--predictions", str(tmp_path / "p.csv"),
                          "--results-output", str(tmp_path / "r.csv"),
                          "--metrics-output", str(tmp_path / "m"))  # fmt: skip
    assert "row 2: extracted_response is longer than 100,000 characters" in line
