"""Evaluation: known scores, aggregation, robustness to real predictions, bad inputs, metadata;
the base model and echo baselines, the uplift over them and the degenerate answers counted."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from yoda_evaluation.cli import main
from yoda_evaluation.evaluate import compare_with_baselines, echo_baseline, evaluate_predictions
from yoda_evaluation.metrics import (
    METRIC_LIST,
    aggregate_metrics,
    compute_metrics,
    metric_definitions,
)
from yoda_evaluation.report import load_report_inputs
from yoda_evaluation.report_html import render_html
from yoda_step_io import BadValueError, StepError
from yoda_step_io.scores import METRIC_NAMES, format_headline, headline_rows

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
    ("content", "phrase"),
    [
        (b"", "is empty"),
        (b"user_input,reference\nq,r\n", "lacks column(s) extracted_response"),
        (b"user_input,reference,extracted_response\n", "no rows"),
        (b"user_input,reference,extracted_response\nq,\xe9t\xe9,x\n", "not UTF-8"),
    ],
    ids=["empty", "missing-column", "header-only", "not-utf8"],
)
def test_bad_predictions_fail_without_output(
    tmp_path: Path, one_error_line: Callable[..., str], content: bytes, phrase: str
) -> None:
    predictions = tmp_path / "predictions.csv"
    predictions.write_bytes(content)
    out = tmp_path / "out"
    line = one_error_line(main, "--predictions", str(predictions),
                          "--results-output", str(out / "results.csv"),
                          "--metrics-output", str(out / "metrics"))  # fmt: skip
    assert str(predictions) in line and phrase in line
    assert not out.exists() or list(out.iterdir()) == []


def test_unknown_metric_fails_before_reading(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    line = one_error_line(main, "--predictions", str(tmp_path / "missing.csv"),
                          "--results-output", str(tmp_path / "r.csv"),
                          "--metrics-output", str(tmp_path / "m"),
                          "--metrics", "rouge_l,bertscore")  # fmt: skip
    assert "--metrics 'rouge_l,bertscore': bertscore" in line


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
    from yoda_evaluation.evaluate import MAX_TEXT_CHARS

    long = "yes " * (MAX_TEXT_CHARS // 4 + 1)
    (tmp_path / "p.csv").write_text(
        f"user_input,reference,extracted_response\nhi,hi,hi\nhi,hi,{long}\n"
    )
    line = one_error_line(main, "--predictions", str(tmp_path / "p.csv"),
                          "--results-output", str(tmp_path / "r.csv"),
                          "--metrics-output", str(tmp_path / "m"))  # fmt: skip
    assert "row 2: extracted_response" in line and "100,000 characters" in line


#: Three answers: right, empty, one word repeated.
ROWS = [
    ["The Force is strong.", "Strong, the Force is.", "Strong, the Force is."],
    ["I like tea.", "Tea, I like.", ""],
    ["He left early.", "Early, he left.", "left left left left"],
]


def test_uplift_is_the_difference_of_means() -> None:
    tuned = pd.DataFrame({"rouge_l": [1.0, 0.5], "bleu": [0.2, 0.4]})
    base = pd.DataFrame({"rouge_l": [0.25, 0.25], "bleu": [0.3, 0.3]})
    echo = pd.DataFrame({"rouge_l": [0.5, 0.7], "bleu": [0.0, 0.0]})
    summary = compare_with_baselines(tuned, base, echo, ["rouge_l", "bleu"])
    assert summary == pytest.approx({
        "base_rouge_l_mean": 0.25, "rouge_l_uplift_vs_base": 0.5,
        "echo_rouge_l_mean": 0.6, "rouge_l_uplift_vs_echo": 0.15,
        "base_bleu_mean": 0.3, "bleu_uplift_vs_base": 0.0,
        "echo_bleu_mean": 0.0, "bleu_uplift_vs_echo": 0.3,
    })  # fmt: skip
    without_base = compare_with_baselines(tuned, None, echo, ["rouge_l"])
    assert set(without_base) == {"echo_rouge_l_mean", "rouge_l_uplift_vs_echo"}


def test_echo_baseline_answers_with_the_users_sentence() -> None:
    frame = pd.DataFrame([dict(zip(HEADER, row, strict=True)) for row in ROWS])
    echo = echo_baseline(frame)
    assert list(echo["extracted_response"]) == [row[0] for row in ROWS]
    assert list(frame["extracted_response"]) == [row[2] for row in ROWS], "input left alone"


def test_three_rows_scored_with_base_answers_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tuned = write_predictions(tmp_path / "tuned.csv", ROWS)
    perfect = [[user, reference, reference] for user, reference, _ in ROWS]
    base = write_predictions(tmp_path / "base.csv", perfect)
    upstream = {"cut_answers": 1.0, "base_cut_answers": 0.0}
    with caplog.at_level(logging.WARNING):
        result = evaluate_predictions(tuned, tmp_path / "results.csv", tmp_path / "metrics",
                                      ["rouge_l", "exact_match"], base_predictions_path=base,
                                      upstream=upstream)  # fmt: skip
    metadata = result.aggregates
    assert metadata["base_rouge_l_mean"] == pytest.approx(1.0)
    assert metadata["rouge_l_uplift_vs_base"] == pytest.approx(metadata["rouge_l_mean"] - 1.0)
    assert metadata["rouge_l_uplift_vs_echo"] == pytest.approx(
        metadata["rouge_l_mean"] - metadata["echo_rouge_l_mean"]
    )
    assert (metadata["empty_answers"], metadata["repeated_answers"], metadata["cut_answers"]) == (
        1, 1, 1)  # fmt: skip
    assert (metadata["base_empty_answers"], metadata["base_cut_answers"]) == (0, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        w.startswith("fine-tuned model:") and "1 of 3" in w and "empty" in w for w in warnings
    )
    results = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert list(results.columns) == ["user_input", "reference", "response", "rouge_l",
                                     "exact_match", "base_response", "base_rouge_l",
                                     "base_exact_match"]  # fmt: skip
    assert list(results["base_response"]) == [r[1] for r in ROWS]
    assert json.loads((tmp_path / "metrics" / "metrics.json").read_text()) == pytest.approx(
        metadata
    )
    text = format_headline(metadata)
    assert [line.split()[0] for line in text.splitlines()[1:4]] == ["fine-tuned", "base", "echo"]
    assert "fine-tuned answers of 3: 1 empty, 1 repeated, 1 cut" in text


def test_base_answers_turned_off_or_for_other_sentences(tmp_path: Path) -> None:
    tuned = write_predictions(tmp_path / "tuned.csv", ROWS)
    header_only = write_predictions(tmp_path / "base.csv", [])
    result = evaluate_predictions(tuned, tmp_path / "r.csv", tmp_path / "m", ["rouge_l"],
                                  base_predictions_path=header_only)  # fmt: skip
    assert "base_rouge_l_mean" not in result.aggregates
    assert [label for label, _ in headline_rows(result.aggregates)] == [
        "fine-tuned", "echo baseline", "uplift vs echo"]  # fmt: skip
    shuffled = write_predictions(tmp_path / "other.csv", ROWS[::-1])
    with pytest.raises(StepError) as error:
        evaluate_predictions(tuned, tmp_path / "r2.csv", tmp_path / "m2", ["rouge_l"],
                             base_predictions_path=shuffled)  # fmt: skip
    assert str(shuffled) in str(error.value) and "same sentences" in str(error.value)
    assert not (tmp_path / "r2.csv").exists() and not (tmp_path / "m2").exists()


def test_echo_row_is_rouge_score_on_the_full_test_split(full_dataset: Path, tmp_path: Path) -> None:
    """Done-when of issue #11: the echo row's ROUGE-L mean on the test split is rouge-score's
    for `sentence` vs `translation_extra` on those rows."""
    from rouge_score import rouge_scorer

    from yoda_data_transformation import transform

    transform(str(full_dataset), tmp_path / "train.jsonl", tmp_path / "test.jsonl")
    test = [
        json.loads(line)["messages"] for line in (tmp_path / "test.jsonl").read_text().splitlines()
    ]
    rows = [[m[0]["content"], m[1]["content"], "anything"] for m in test]
    result = evaluate_predictions(write_predictions(tmp_path / "p.csv", rows), tmp_path / "r.csv",
                                  tmp_path / "m", ["rouge_l"])  # fmt: skip
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    direct = [scorer.score(ref, user)["rougeL"].fmeasure for user, ref, _ in rows]
    assert len(rows) == 72
    assert result.aggregates["echo_rouge_l_mean"] == pytest.approx(sum(direct) / len(direct))


def test_results_csv_keeps_a_lone_carriage_return_inside_its_cell(tmp_path: Path) -> None:
    """A generated answer may hold a bare "\\r"; the report's csv reader must see one row."""
    rows = [["Hi.", "Hi, it is.", "odd\ranswer"], ["Yes.", "Yes, it is.", "fine"]]
    base = write_predictions(tmp_path / "b.csv", rows)
    predictions = write_predictions(tmp_path / "p.csv", rows)
    evaluate_predictions(predictions, tmp_path / "r.csv", tmp_path / "m", ["rouge_l"],
                         base_predictions_path=base)  # fmt: skip
    inputs = load_report_inputs(tmp_path / "r.csv", tmp_path / "m", None, None)
    assert [row["response"] for row in inputs.samples] == ["odd\ranswer", "fine"]
    assert "odd" in render_html(inputs)
