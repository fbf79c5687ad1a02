"""The run's report as Markdown, and its loss curves (yoda_evaluation.report)."""

from __future__ import annotations

from yoda_evaluation.report import ReportInputs, loss_curves, render_markdown


def test_report_markdown_holds_the_same_facts(report_inputs: ReportInputs) -> None:
    markdown = render_markdown(report_inputs)
    assert "| fine-tuned | 0.480 |" in markdown and "| uplift vs base | -0.040 |" in markdown
    assert "| fine-tuned | 5 | 0 | 2 |" in markdown
    assert "## Best 10 by rouge_l" in markdown and "| lora_r | 8 |" in markdown


def test_loss_curves_by_step(report_inputs: ReportInputs) -> None:
    curves = loss_curves(report_inputs.log_history)
    assert len(curves["training"]) == 20 and len(curves["validation"]) == 4
