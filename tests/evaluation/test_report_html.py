"""The report as one self-contained HTML page (yoda_evaluation.report_html): the headline table,
the inline SVG charts and the samples, escaped, with nothing loaded from elsewhere."""

from __future__ import annotations

from yoda_evaluation.report import ReportInputs
from yoda_evaluation.report_html import render_html


def test_report_html_is_self_contained_with_table_charts_and_samples(
    report_inputs: ReportInputs,
) -> None:
    html = render_html(report_inputs)
    assert html.startswith("<!doctype html>") and 'id="headline"' in html
    assert html.count("<svg") == 2 and "<polyline" in html and "<rect" in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert "Answer &lt;29&gt; &amp; more" in html, "sample text is escaped"
    assert "Best 10 by rouge_l" in html and "Worst 10 by rouge_l" in html
    assert 'class="num down">-0.040' in html and "<em>(empty)</em>" in html
    assert "train conversations" in html and "lora_r" in html
