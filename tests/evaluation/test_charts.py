"""The report's charts (yoda_evaluation.charts): the histogram's bins."""

from __future__ import annotations

from yoda_evaluation.charts import histogram


def test_histogram_puts_each_value_in_its_bin_and_one_in_the_last() -> None:
    assert histogram([0.0, 0.05, 0.5, 0.99, 1.0], bins=10) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
