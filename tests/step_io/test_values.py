"""The allowed values of the steps' flags (yoda_step_io.values)."""

from __future__ import annotations

import argparse

import pytest

from yoda_step_io.values import BOOLEAN


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("True", True), ("0", False), ("no", False)]
)
def test_booleans_read_kfp_booleans(text: str, value: bool) -> None:
    assert BOOLEAN(text) is value


def test_booleans_refuse_other_words() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        BOOLEAN("maybe")
