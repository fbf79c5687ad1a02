"""Learning, guarded (issue 18): the real small model SmolLM2-135M-Instruct, fine-tuned through
the whole compiled pipeline on KFP's local runner and the full data set, must answer the test
split like Yoda: its ROUGE-L mean at least the echo baseline's + 0.10 and the base model's +
0.40, at most 5 % empty answers and 5 % answers cut at max_new_tokens, and the quality gate
passing on merit. A broken chat template, label masking, stop token or LoRA wiring fails it.

It takes minutes on two cores: ``make test-learning`` (a stage of its own in ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yoda_pipeline.artifacts import CHAMPION_TASK, run_output

# the run takes about 11 minutes on two cores: longer than the suite's 600 s per test
pytestmark = [pytest.mark.learning, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
FULL_DATA = ROOT.parent / "shared" / "data" / "yoda_sentences.csv"
MARGIN_VS_ECHO, MARGIN_VS_BASE, MOST_DEGENERATE = 0.10, 0.40, 0.05


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FULL_DATA.is_file():
        pytest.skip(f"the full data set is not at {FULL_DATA}")
    runs = tmp_path_factory.mktemp("learning-runs")
    command = [str(Path(sys.executable).with_name("yoda-pipeline")), "run-local",
               "--raw-data-uri", str(FULL_DATA), "--set", "base_model=smollm2",
               "--runs-dir", str(runs)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    (run,) = runs.iterdir()
    print(done.stdout[-2500:])
    return run


def test_the_fine_tuned_model_beats_both_baselines_by_the_margins(smollm2_run: Path) -> None:
    metrics = run_output(smollm2_run, "evaluation-component", "metrics")
    assert metrics is not None
    scores = json.loads((metrics / "metrics.json").read_text())
    tuned, echo, base = (scores[f"{p}rouge_l_mean"] for p in ("", "echo_", "base_"))
    assert tuned >= echo + MARGIN_VS_ECHO, f"fine-tuned {tuned:.3f} vs echo {echo:.3f}"
    assert tuned >= base + MARGIN_VS_BASE, f"fine-tuned {tuned:.3f} vs base {base:.3f}"
    samples = scores["samples"]
    assert scores["empty_answers"] <= MOST_DEGENERATE * samples, scores["empty_answers"]
    assert scores["cut_answers"] <= MOST_DEGENERATE * samples, scores["cut_answers"]


def test_the_gate_passes_on_merit(smollm2_run: Path) -> None:
    decision = run_output(smollm2_run, "gate-component", "decision")
    assert decision is not None
    assert json.loads((decision / "decision.json").read_text())["passed"] is True


def test_the_models_answers_are_yoda_speak(smollm2_run: Path) -> None:
    """``yoda-predict`` on the run's model: Yoda's word order (the object first, the verb
    last, as in "Strong with you, the Force is.")."""
    model = run_output(smollm2_run, CHAMPION_TASK, "model")
    assert model is not None
    done = subprocess.run([str(Path(sys.executable).with_name("yoda-predict")), str(model),
                           "The Force is strong with you.", "--quantization", "auto"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    answer = done.stdout.splitlines()[1]
    print(answer)
    assert answer.strip() and answer.strip() != "The Force is strong with you."
