"""``yoda-report``: the report step's console script (in the evaluation image).

It renders the run's report, as KFP ``HTML`` and ``Markdown`` artifacts, from the evaluation's
results and metrics and the fine-tuning's metrics and model. By hand::

    yoda-report --evaluation-results results.csv --evaluation-metrics metrics \
        --training-metrics training-metrics --model model \
        --html-output report.html --markdown-output report.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from yoda_step_io import Metadata, Step, add_executor_input_flag, outputs_in_place, step_parser


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-report", __doc__)
    parser.add_argument("--evaluation-results", type=Path, required=True, help="per-sample CSV")
    parser.add_argument("--evaluation-metrics", type=Path, required=True, help="metrics folder")
    parser.add_argument("--training-metrics", type=Path, help="fine-tuning metrics folder")
    parser.add_argument("--model", type=Path, help="Model folder (hyperparameters.json)")
    parser.add_argument("--html-output", type=Path, required=True, help="HTML file")
    parser.add_argument("--markdown-output", type=Path, required=True, help="Markdown file")
    add_executor_input_flag(parser)
    return parser


def body(args: argparse.Namespace) -> Metadata:
    """Render and write the report; its size."""
    from yoda_evaluation.report import load_report_inputs, render_markdown
    from yoda_evaluation.report_html import render_html

    inputs = load_report_inputs(
        args.evaluation_results, args.evaluation_metrics, args.training_metrics, args.model
    )
    html, markdown = render_html(inputs), render_markdown(inputs)
    with outputs_in_place(args.html_output, args.markdown_output):
        args.html_output.write_text(html, encoding="utf-8")
        args.markdown_output.write_text(markdown, encoding="utf-8")
    about = {"samples": len(inputs.samples), "format": "self-contained"}
    return {"html": {**about, "bytes": len(html.encode())}, "markdown": {**about}}


STEP = Step(
    build_parser,
    body,
    outputs=("html_output", "markdown_output"),
    inputs=("evaluation_results", "evaluation_metrics", "training_metrics", "model"),
)
main = STEP.main

if __name__ == "__main__":
    main()
