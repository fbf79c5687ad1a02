"""The inference tests' shared fixture: the tiny tuned model, loaded once per test module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from yoda_inference.model import load_finetuned, trained_on


@pytest.fixture(scope="module")
def loaded(tuned_model_dir: Path) -> tuple[Any, Any]:
    """The tuned model (its adapter on) and its tokenizer, in float32."""
    return load_finetuned(tuned_model_dir, trained_on(tuned_model_dir), four_bit=False,
                          compute_dtype="float32")  # fmt: skip
