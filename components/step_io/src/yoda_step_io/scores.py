"""The evaluation's headline: three rows (fine-tuned, base model, echo baseline) by metric.

The evaluation step writes its aggregates (KFP metadata and ``metrics.json``) with the keys
``<m>_mean``, ``base_<m>_mean``, ``echo_<m>_mean``, ``<m>_uplift_vs_base``,
``<m>_uplift_vs_echo`` and the degenerate-answer counts; the report step and
``make report`` / ``make run-local`` read them back (:func:`yoda_step_io.contract.read_metrics`)
and lay them out through this module.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The ragas metrics of the evaluation step (``yoda_evaluation.metrics`` maps each to its
#: factory), in report order; ROUGE-L is the headline. The gate decides on one of them.
METRIC_NAMES = (
    "rouge_l",
    "rouge_1",
    "bleu",
    "levenshtein_similarity",
    "jaro_winkler_similarity",
    "exact_match",
    "string_present",
)
#: (row label, key prefix) of the models the evaluation scores.
MODELS = (("fine-tuned", ""), ("base model", "base_"), ("echo baseline", "echo_"))
UPLIFTS = (("uplift vs base", "uplift_vs_base"), ("uplift vs echo", "uplift_vs_echo"))
DEGENERATE = ("empty", "repeated", "cut")


def metric_names(aggregates: Mapping[str, float]) -> list[str]:
    """The metrics scored, in the evaluation's order (``rouge_l`` first by default)."""
    return [
        key.removesuffix("_mean")
        for key in aggregates
        if key.endswith("_mean") and not key.startswith(("base_", "echo_"))
    ]


def headline_rows(aggregates: Mapping[str, float]) -> list[tuple[str, list[float | None]]]:
    """Rows of (label, one value per metric); ``None`` where a model was not scored. The
    models' means first, then the fine-tuned model's uplifts (differences of means)."""
    names = metric_names(aggregates)
    rows = [
        (label, [aggregates.get(f"{prefix}{name}_mean") for name in names])
        for label, prefix in MODELS
        if any(f"{prefix}{name}_mean" in aggregates for name in names)
    ]
    rows += [
        (label, [aggregates.get(f"{name}_{suffix}") for name in names])
        for label, suffix in UPLIFTS
        if any(f"{name}_{suffix}" in aggregates for name in names)
    ]
    return rows


def degenerate_rows(aggregates: Mapping[str, float]) -> list[tuple[str, dict[str, int | None]]]:
    """Per scored model: how many answers were empty, one word repeated, cut at max_new_tokens."""
    rows = []
    for label, prefix in MODELS[:2]:
        counts = {kind: aggregates.get(f"{prefix}{kind}_answers") for kind in DEGENERATE}
        if any(value is not None for value in counts.values()):
            rows.append((label, {k: None if v is None else int(v) for k, v in counts.items()}))
    return rows


def format_score(value: float | None, signed: bool) -> str:
    """A mean (``0.812``) or an uplift (``+0.123``); ``-`` where there is none."""
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def format_headline(aggregates: Mapping[str, float]) -> str:
    """The headline as a text table, for a terminal or a log."""
    names = metric_names(aggregates)
    widths = [max(7, len(name)) + 2 for name in names]
    lines = [f"{'':<15}" + "".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))]
    for label, values in headline_rows(aggregates):
        signed = label.startswith("uplift")
        cells = (f"{format_score(v, signed):>{w}}" for v, w in zip(values, widths, strict=True))
        lines.append(f"{label:<15}" + "".join(cells))
    samples = int(aggregates.get("samples", 0))
    for label, counts in degenerate_rows(aggregates):
        described = ", ".join(f"{'?' if n is None else n} {kind}" for kind, n in counts.items())
        lines.append(f"{label} answers of {samples}: {described}")
    return "\n".join(lines)
