"""The evaluation tests' shared fixture: the inputs of a run's report."""

from __future__ import annotations

import pytest

from yoda_evaluation.report import ReportInputs


@pytest.fixture
def report_inputs() -> ReportInputs:
    """A run of 30 samples: its scores, every seventh answer empty, a loss curve, two facts."""
    samples = 30
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
