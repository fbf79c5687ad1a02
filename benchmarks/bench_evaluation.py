"""ragas scoring cost per sample, against computing ROUGE-L directly with rouge-score.

Scores the 720 rows of ``../shared/data/yoda_sentences.csv`` (response = ``translation``,
reference = ``translation_extra``: realistic near-misses; the embedded sample where the full set
is absent), one sample at a time as the step does. Part of ``make bench`` (benchmarks/bench.py).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from yoda_pipeline.settings import sample_data_path

FULL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yoda_sentences.csv"


def measure() -> dict[str, Any]:
    """ms/sample for all metrics, for ragas' ROUGE-L alone and for rouge-score's ROUGE-L."""
    from rouge_score import rouge_scorer

    from yoda_evaluation.metrics import DEFAULT_METRICS, compute_metrics, metric_definitions

    source = FULL_DATA if FULL_DATA.is_file() else sample_data_path()
    with source.open(encoding="utf-8") as handle:
        rows = [
            (r["sentence"], r["translation"], r["translation_extra"])
            for r in csv.DictReader(handle)
        ]

    def timed_ragas(names: tuple[str, ...]) -> tuple[float, float]:
        metrics = metric_definitions(names)
        compute_metrics(*rows[0], metrics)  # warm-up (imports, tokenizer set-up)
        start = time.perf_counter()
        total = sum(compute_metrics(u, resp, ref, metrics)[names[0]] for u, resp, ref in rows)
        return (time.perf_counter() - start) / len(rows), total / len(rows)

    all_s, _ = timed_ragas(DEFAULT_METRICS)
    ragas_s, ragas_mean = timed_ragas(("rouge_l",))
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    start = time.perf_counter()
    direct_total = sum(scorer.score(ref, resp)["rougeL"].fmeasure for _, resp, ref in rows)
    direct_s = (time.perf_counter() - start) / len(rows)
    return {
        "rows": len(rows),
        "source": source.name,
        "metrics": len(DEFAULT_METRICS),
        "all_ms": 1000 * all_s,
        "ragas_rouge_l_ms": 1000 * ragas_s,
        "direct_rouge_l_ms": 1000 * direct_s,
        "ragas_mean": ragas_mean,
        "direct_mean": direct_total / len(rows),
    }
