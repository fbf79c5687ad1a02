"""The price per hour of a run's GPU tasks, said before a submission (yoda_pipeline.prices), and
the same prices in docs/scaling.md."""

from __future__ import annotations

import re
from pathlib import Path

from yoda_pipeline.prices import USD_PER_HOUR, run_price_line
from yoda_pipeline.settings import PipelineSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_price_per_hour_is_said_before_a_run() -> None:
    line = run_price_line(PipelineSettings(accelerator_count=2))
    assert "fine-tuning on 2 x NVIDIA_TESLA_T4, about 1.46 USD/hour" in line
    assert "inference on 1 x NVIDIA_TESLA_T4, about 1.11 USD/hour" in line
    # a sweep: every recipe is its own fine-tuning task
    sweep = [{"learning_rate": 0.001}, {"learning_rate": 0.002, "lora_r": 16}]
    assert "1.46 USD/hour each, 2 recipes;" in run_price_line(
        PipelineSettings(accelerator_count=2, sweep=sweep)
    )
    assert "no price on record" in run_price_line(
        PipelineSettings(accelerator_type="NVIDIA_H100_80GB")
    )


def test_the_documented_prices_are_the_ones_said_before_a_run() -> None:
    """docs/scaling.md shows the prices the submission says (prices.py)."""
    scaling = (REPO_ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    short = {"NVIDIA_TESLA_T4": "T4", "NVIDIA_L4": "L4"}
    for (gpu, count), usd in USD_PER_HOUR.items():
        row = re.search(rf"^\| {count} {short[gpu]} \|.*= ([\d.]+) \|$", scaling, re.MULTILINE)
        assert row is not None and float(row.group(1)) == usd, (gpu, count)
