"""Evaluation that tells the truth: the base model and echo baselines, the uplift, degenerate
answers counted, and the report (HTML + Markdown) rendered from them."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from yoda_evaluation.charts import histogram
from yoda_evaluation.evaluate import compare_with_baselines, echo_baseline, evaluate_predictions
from yoda_evaluation.report import ReportInputs, load_report_inputs, loss_curves, render_markdown
from yoda_evaluation.report_cli import main as report_main
from yoda_evaluation.report_html import render_html
from yoda_step_io import StepError
from yoda_step_io.answers import degenerate_counts, is_repeated_token
from yoda_step_io.scores import format_headline, headline_rows

HEADER = ["user_input", "reference", "extracted_response"]
ROWS = [
    ["The Force is strong.", "Strong, the Force is.", "Strong, the Force is."],
    ["I like tea.", "Tea, I like.", ""],
    ["He left early.", "Early, he left.", "left left left left"],
]


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    return path


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


def test_degenerate_answers() -> None:
    assert is_repeated_token("cat cat cat") and not is_repeated_token("cat cat")
    assert not is_repeated_token("and on and on and on")
    answers = ["", "  ", "ok", "no no no no", "Strong, it is."]
    assert degenerate_counts(answers, "base_") == {"base_empty_answers": 2,
                                                   "base_repeated_answers": 1}  # fmt: skip


def test_three_rows_scored_with_base_answers_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tuned = write(tmp_path / "tuned.csv", ROWS)
    base = write(tmp_path / "base.csv", [[r[0], r[1], r[1]] for r in ROWS])  # perfect answers
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
    assert "fine-tuned model: 1 of 3 answers (33%) are empty" in caplog.text
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
    tuned = write(tmp_path / "tuned.csv", ROWS)
    header_only = write(tmp_path / "base.csv", [])
    result = evaluate_predictions(tuned, tmp_path / "r.csv", tmp_path / "m", ["rouge_l"],
                                  base_predictions_path=header_only)  # fmt: skip
    assert "base_rouge_l_mean" not in result.aggregates
    assert [label for label, _ in headline_rows(result.aggregates)] == [
        "fine-tuned", "echo baseline", "uplift vs echo"]  # fmt: skip
    shuffled = write(tmp_path / "other.csv", ROWS[::-1])
    with pytest.raises(StepError, match="do not answer the same sentences"):
        evaluate_predictions(tuned, tmp_path / "r2.csv", tmp_path / "m2", ["rouge_l"],
                             base_predictions_path=shuffled)  # fmt: skip
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
    result = evaluate_predictions(write(tmp_path / "p.csv", rows), tmp_path / "r.csv",
                                  tmp_path / "m", ["rouge_l"])  # fmt: skip
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    direct = [scorer.score(ref, user)["rougeL"].fmeasure for user, ref, _ in rows]
    assert len(rows) == 72
    assert result.aggregates["echo_rouge_l_mean"] == pytest.approx(sum(direct) / len(direct))


def report_inputs(samples: int = 30) -> ReportInputs:
    rows = [
        {"user_input": f"Sentence {i}.", "reference": f"Reference {i}, it is.",
         "response": "" if i % 7 == 0 else f"Answer <{i}> & more", "rouge_l": str(i / samples),
         "base_response": f"Base {i}", "base_rouge_l": str(1 - i / samples)}
        for i in range(samples)
    ]  # fmt: skip
    aggregates = {"samples": float(samples), "rouge_l_mean": 0.48, "base_rouge_l_mean": 0.52,
                  "echo_rouge_l_mean": 0.6, "rouge_l_uplift_vs_base": -0.04,
                  "rouge_l_uplift_vs_echo": -0.12, "empty_answers": 5.0, "repeated_answers": 0.0,
                  "cut_answers": 2.0, "base_empty_answers": 0.0, "base_repeated_answers": 0.0,
                  "base_cut_answers": 1.0}  # fmt: skip
    history = [{"loss": 3.0 - s / 10, "step": s} for s in range(1, 21)] + [
        {"eval_loss": 2.9 - s / 12, "step": s} for s in (5, 10, 15, 20)] + [
        {"train_runtime": 12.0, "step": 20}]  # fmt: skip
    return ReportInputs(aggregates, rows, history, {"train_conversations": 583.0},
                        {"lora_r": 8, "base_model": "tiny"})  # fmt: skip


def test_report_html_is_self_contained_with_table_charts_and_samples() -> None:
    html = render_html(report_inputs())
    assert html.startswith("<!doctype html>") and 'id="headline"' in html
    assert html.count("<svg") == 2 and "<polyline" in html and "<rect" in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert "Answer &lt;29&gt; &amp; more" in html, "sample text is escaped"
    assert "Best 10 by rouge_l" in html and "Worst 10 by rouge_l" in html
    assert 'class="num down">-0.040' in html and "<em>(empty)</em>" in html
    assert "train conversations" in html and "lora_r" in html


def test_report_markdown_holds_the_same_facts() -> None:
    markdown = render_markdown(report_inputs())
    assert "| fine-tuned | 0.480 |" in markdown and "| uplift vs base | -0.040 |" in markdown
    assert "| fine-tuned | 5 | 0 | 2 |" in markdown
    assert "## Best 10 by rouge_l" in markdown and "| lora_r | 8 |" in markdown


def test_loss_curves_and_histogram() -> None:
    curves = loss_curves(report_inputs().log_history)
    assert len(curves["training"]) == 20 and len(curves["validation"]) == 4
    assert histogram([0.0, 0.05, 0.5, 0.99, 1.0], bins=10) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]


def test_report_cli_writes_both_artifacts_or_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
    with pytest.raises(SystemExit) as exit_info:
        report_main(["--evaluation-results", str(tmp_path / "nope.csv"),
                     "--evaluation-metrics", str(tmp_path / "metrics"),
                     "--html-output", str(tmp_path / "x" / "html"),
                     "--markdown-output", str(tmp_path / "x" / "md")])  # fmt: skip
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("nope.csv do not exist")
    assert not any((tmp_path / "x").iterdir())


def test_results_csv_keeps_a_lone_carriage_return_inside_its_cell(tmp_path: Path) -> None:
    """A generated answer may hold a bare "\\r"; the report's csv reader must see one row."""
    rows = [["Hi.", "Hi, it is.", "odd\ranswer"], ["Yes.", "Yes, it is.", "fine"]]
    base = write(tmp_path / "b.csv", rows)
    evaluate_predictions(write(tmp_path / "p.csv", rows), tmp_path / "r.csv", tmp_path / "m",
                         ["rouge_l"], base_predictions_path=base)  # fmt: skip
    inputs = load_report_inputs(tmp_path / "r.csv", tmp_path / "m", None, None)
    assert [row["response"] for row in inputs.samples] == ["odd\ranswer", "fine"]
    assert "odd" in render_html(inputs)
