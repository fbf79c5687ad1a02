"""The quality gate (yoda_registry.gate): a model passes when it beats the score floor and both
baselines by their margins; each reason is written to the decision, and `yoda-gate` writes the
decision and the pipeline's condition."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from yoda_pipeline.settings import PipelineSettings
from yoda_registry.gate import Thresholds, decide
from yoda_registry.gate import main as gate_main
from yoda_step_io import StepError

#: A run that passes the default gate: over the floor, and over both baselines by the margins.
GOOD = {"rouge_l_mean": 0.8, "base_rouge_l_mean": 0.55, "echo_rouge_l_mean": 0.6,
        "rouge_l_uplift_vs_base": 0.25, "rouge_l_uplift_vs_echo": 0.2, "samples": 72.0}  # fmt: skip


def test_the_gate_passes_a_model_that_beats_both_baselines_and_the_floor() -> None:
    decision = decide(GOOD, Thresholds())
    assert decision.passed and decision.score == 0.8
    assert decision.reasons == ["rouge_l 0.800 >= floor 0.500",
                                "uplift vs base +0.250 >= margin +0.050",
                                "uplift vs echo +0.200 >= margin +0.050"]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"rouge_l_mean": 0.4}, "rouge_l 0.400 < floor 0.500"),
        ({"rouge_l_uplift_vs_base": 0.01}, "uplift vs base +0.010 < margin +0.050"),
        ({"rouge_l_uplift_vs_echo": -0.02}, "uplift vs echo -0.020 < margin +0.050"),
    ],
)
def test_the_gate_refuses_with_the_reason(changes: dict[str, float], reason: str) -> None:
    decision = decide({**GOOD, **changes}, Thresholds())
    assert not decision.passed and reason in decision.reasons


def test_the_gate_says_what_it_could_not_compare() -> None:
    without_base = {k: v for k, v in GOOD.items() if "base" not in k}
    decision = decide(without_base, Thresholds())
    assert decision.passed
    assert [r for r in decision.reasons if "base" in r and "not compared" in r], decision.reasons
    with pytest.raises(StepError) as error:
        decide(GOOD, Thresholds(metric="bleu"))
    assert "no bleu_mean" in str(error.value) and "rouge_l" in str(error.value)  # what it has


def test_pipeline_gate_defaults_match_the_step() -> None:
    """The compiled pipeline's gate (settings) and `yoda-gate` run by hand must not drift."""
    settings, thresholds = PipelineSettings(), Thresholds()
    assert (settings.gate_metric, settings.gate_min_uplift_vs_base,
            settings.gate_min_uplift_vs_echo, settings.gate_min_score) == (
        thresholds.metric, thresholds.min_uplift_vs_base, thresholds.min_uplift_vs_echo,
        thresholds.min_score)  # fmt: skip


def test_gate_cli_writes_the_decision_and_the_condition(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "metrics.json").write_text(json.dumps(GOOD))
    gate_main(["--evaluation-metrics", str(tmp_path / "metrics"), "--min-score", "0.9",
               "--decision-output", str(tmp_path / "decision"),
               "--passed-output", str(tmp_path / "passed")])  # fmt: skip
    assert json.loads((tmp_path / "passed").read_text()) is False
    decision = json.loads((tmp_path / "decision" / "decision.json").read_text())
    assert decision["passed"] is False and decision["reasons"].startswith("rouge_l 0.800 < floor")
    line = one_error_line(gate_main, "--evaluation-metrics", str(tmp_path / "none"),
                          "--decision-output", str(tmp_path / "d2"),
                          "--passed-output", str(tmp_path / "p2"))  # fmt: skip
    assert str(tmp_path / "none") in line
    assert not (tmp_path / "d2").exists() and not (tmp_path / "p2").exists()
