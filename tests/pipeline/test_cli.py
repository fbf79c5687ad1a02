"""`yoda-pipeline`'s own parsing (yoda_pipeline.cli): the pairs of ``--sets``/make's ``SET``,
each value taken verbatim."""

from __future__ import annotations

import pytest

from yoda_pipeline.cli import split_sets


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("a=1 b=2", ["a=1", "b=2"]),
        ("  lora_r=16   max_steps=5 ", ["lora_r=16", "max_steps=5"]),
        ("registry_model_name=a b c", ["registry_model_name=a b c"]),
        ('sweep=[{"lora_r": 16}, {"lora_r": 8}] seed=1', ['sweep=[{"lora_r": 16}, {"lora_r": 8}]',
                                                           "seed=1"]),
        ("x='quoted value' y=`date`", ["x='quoted value'", "y=`date`"]),
        ("", []),
    ],
)  # fmt: skip
def test_set_pairs_are_taken_verbatim(text: str, pairs: list[str]) -> None:
    assert split_sets(text) == pairs
