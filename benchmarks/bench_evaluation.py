"""Benchmark: ragas scoring cost per sample, against computing ROUGE-L directly with rouge-score.

    uv run python benchmarks/bench_evaluation.py

Scores the 720 rows of ``../shared/data/yoda_sentences.csv`` (response = ``translation``,
reference = ``translation_extra``: realistic near-misses; the embedded sample where the full set
is absent). Prints ms per sample for all metrics, for ragas' ROUGE-L alone and for rouge-score's
ROUGE-L alone, and the ragas/direct ratio; figures are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from rouge_score import rouge_scorer

from yoda_evaluation.metrics import DEFAULT_METRICS, compute_metrics, metric_definitions
from yoda_pipeline.settings import sample_data_path

FULL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yoda_sentences.csv"


def main() -> None:
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

    print(f"{len(rows)} samples from {source.name}")
    print(f"ragas, all {len(DEFAULT_METRICS)} metrics  : {1000 * all_s:7.3f} ms/sample "
          f"({all_s * len(rows):.2f} s in all)")  # fmt: skip
    print(f"ragas, ROUGE-L only     : {1000 * ragas_s:7.3f} ms/sample (mean {ragas_mean:.4f})")
    print(f"rouge-score, ROUGE-L    : {1000 * direct_s:7.3f} ms/sample "
          f"(mean {direct_total / len(rows):.4f})")  # fmt: skip
    print(f"ragas / direct ROUGE-L  : {ragas_s / direct_s:7.1f}x")


if __name__ == "__main__":
    main()
